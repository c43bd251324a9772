"""The workloads W1-W8 and how each one is measured.

A workload function takes a peer and the workload's settings and returns a
list of result rows, one per peer variant or API, each a dict with ``label``,
``unit`` and ``runs`` (one measured value per run) plus workload-specific
details. Like ``peers``, this module imports only the standard library.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List

from peers import CPU_COUNT, DeadlineTasks, Msgflux, NotApplicable, Peer, Processes

MIB = 1 << 20

# Workload settings for each mode. "full" runs the sizes named in TITLES.
# "quick" keeps those sizes but skips the 1,000,000-task memory run, and
# "smoke" shrinks every size so that a test run can cover each path.
SETTINGS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "full": {
        "W1-100k": dict(tasks=100_000),
        "W1-10k": dict(tasks=10_000),
        "W2": dict(tasks=1000, seconds=0.010),
        "W3": dict(tasks=64, size=4 * MIB),
        # 1,500,000 additions take about 50 ms in CPython 3.11 on the
        # machine in docs/benchmarks.md; the count is fixed, not the time.
        "W4": dict(tasks=16, iterations=1_500_000),
        "W5": dict(tasks=10_000),
        "W6": dict(tasks=4, quick=0.05, slow=2.0, timeout=0.2),
        "W7": dict(outer=8, inner=8, seconds=0.050),
        "W8-100k": dict(tasks=100_000),
        "W8-1M": dict(tasks=1_000_000),
    },
    "smoke": {
        "W1-100k": dict(tasks=300),
        "W1-10k": dict(tasks=100),
        "W2": dict(tasks=20, seconds=0.001),
        "W3": dict(tasks=4, size=64 * 1024),
        "W4": dict(tasks=2, iterations=1000),
        "W5": dict(tasks=100),
        "W6": dict(tasks=4, quick=0.0, slow=0.3, timeout=0.05),
        "W7": dict(outer=2, inner=2, seconds=0.001),
        "W8-100k": dict(tasks=1000),
        "W8-1M": dict(tasks=2000),
    },
}
SETTINGS["quick"] = {k: v for k, v in SETTINGS["full"].items() if k != "W8-1M"}

TITLES = {
    "W1-100k": "W1: 100,000 trivial calls",
    "W1-10k": "W1: 10,000 trivial calls",
    "W2": "W2: 1,000 blocking sleeps of 10 ms",
    "W3": "W3: 64 SHA-256 digests of 4 MiB",
    "W4": "W4: 16 pure-Python loops of about 50 ms",
    "W5": "W5: 10,000 trivial coroutines",
    "W6": "W6: 4 tasks, one sleeping 2 s, timeout 0.2 s",
    "W7": "W7: 8 tasks that each gather 8 sleeps of 50 ms",
    "W8-100k": "W8: peak memory per task, 100,000 tasks",
    "W8-1M": "W8: peak memory per task, 1,000,000 tasks",
}


def sized_workers(workload: str, settings: Dict[str, Any]) -> int:
    """Return the worker count that suits a workload, for the sized peers:
    one per task for sleeps, one per CPU for computation."""
    if workload == "W2" or workload == "W6":
        return settings["tasks"]
    if workload == "W7":
        return settings["outer"] * (1 + settings["inner"])
    return CPU_COUNT


# ---------------------------------------------------------------------------
# Task bodies. Module-level functions, so process pools can pickle them.


def trivial(value: Any) -> Any:
    return value


async def trivial_coroutine(value: Any) -> Any:
    return value


def nothing(_: Any) -> None:
    return None


def sha256_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def count_up(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i
    return total


# ---------------------------------------------------------------------------
# Measurement


# No cell makes more than MAX_RUNS runs, however short they are.
MAX_RUNS = 100


def repeat(measure: Callable[[], float], options: Dict[str, Any]) -> List[float]:
    """Call ``measure`` at least ``options["runs"]`` times after an optional
    warm-up call, and return the measured values.

    Short runs go on until they have taken ``options["min_seconds"]``, so a
    millisecond-long cell gets a median of many runs. After
    ``options["budget"]`` seconds the runs stop early, but never before the
    third, so a cell that takes seconds per run still yields a median of three.
    """
    runs, budget, min_seconds = options["runs"], options["budget"], options["min_seconds"]
    if options["warmup"]:
        measure()
    values: List[float] = []
    started = time.perf_counter()
    while True:
        values.append(measure())
        elapsed = time.perf_counter() - started
        if len(values) >= min(3, runs) and elapsed > budget:
            break
        if len(values) >= runs and (elapsed >= min_seconds or len(values) >= MAX_RUNS):
            break
    return values


def check_results(results: Any, expected: List[Any], label: str) -> None:
    results = list(results)
    if results != expected:
        wrong = sum(1 for a, b in zip(results, expected) if a != b)
        raise AssertionError(
            f"{label} returned wrong results: {len(results)} values for "
            f"{len(expected)} tasks, {wrong} of them different"
        )


def time_map(peer: Peer, fn: Callable[[Any], Any], items: List[Any], options) -> List[float]:
    """Time ``peer.map(fn, ...)`` over the items; return seconds per run."""
    prepared = peer.prepare(items)

    def measure() -> float:
        started = time.perf_counter()
        results = peer.map(fn, prepared)
        seconds = time.perf_counter() - started
        check_length(results, len(items), peer.name)
        return seconds

    return repeat(measure, options)


def check_length(results: Any, count: int, label: str) -> None:
    if len(results) != count:
        raise AssertionError(f"{label} returned {len(results)} results for {count} tasks")


def row(peer_label: str, unit: str, runs: List[float], **extra: Any) -> Dict[str, Any]:
    return dict(label=peer_label, unit=unit, runs=runs, **extra)


# ---------------------------------------------------------------------------
# The workloads


def w1_trivial_calls(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    items = list(range(settings["tasks"]))
    prepared = peer.prepare(items)
    check_results(peer.map(trivial, prepared), items, peer.name)
    runs = time_map(peer, trivial, items, options)
    per_task = [seconds / len(items) * 1e6 for seconds in runs]
    return [row(peer.name, "µs per task", per_task)]


def w2_blocking_sleeps(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    items = [settings["seconds"]] * settings["tasks"]
    runs = time_map(peer, time.sleep, items, options)
    return [row(peer.name, "ms", [s * 1e3 for s in runs])]


def w3_sha256(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    data = os.urandom(settings["size"])
    items = [data] * settings["tasks"]
    check_results(
        peer.map(sha256_digest, peer.prepare(items[:2])),
        [sha256_digest(data)] * 2,
        peer.name,
    )
    runs = time_map(peer, sha256_digest, items, options)
    return [row(peer.name, "ms", [s * 1e3 for s in runs])]


def w4_pure_python(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    items = [settings["iterations"]] * settings["tasks"]
    runs = time_map(peer, count_up, items, options)
    return [row(peer.name, "ms", [s * 1e3 for s in runs])]


def w5_coroutines(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    items = list(range(settings["tasks"]))
    prepared = peer.prepare(items)
    check_results(peer.amap(trivial_coroutine, prepared), items, peer.name)

    def measure() -> float:
        started = time.perf_counter()
        peer.amap(trivial_coroutine, prepared)
        return time.perf_counter() - started

    runs = repeat(measure, options)
    return [row(peer.name, "ms", [s * 1e3 for s in runs])]


def w6_deadline(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    tasks = DeadlineTasks(settings["tasks"], settings["quick"], settings["slow"])
    timeout = settings["timeout"]
    by_api: Dict[str, Dict[str, Any]] = {}
    # Each run waits for the slow task, so this workload makes exactly `runs`.
    for _ in range(options["runs"]):
        rows = peer.deadline(tasks, timeout)
        for api, seconds, slots in rows:
            entry = by_api.setdefault(api, dict(runs=[], slots=None))
            entry["runs"].append(seconds * 1e3)
            entry["slots"] = describe_slots(slots)
        # Let the slow task end before the next run, so runs do not overlap.
        time.sleep(settings["slow"] + 0.1)
    return [
        row(f"{peer.name} {api}", "ms", entry["runs"], slots=entry["slots"],
            timeout_ms=timeout * 1e3)
        for api, entry in by_api.items()
    ]


def describe_slots(slots: Any) -> str:
    """Summarize slot contents as counts, e.g. ``3 ok, 1 TimeoutError``."""
    if isinstance(slots, BaseException):
        return f"call raised {type(slots).__name__}"
    counts: Dict[str, int] = {}
    for value in slots:
        exception = value if isinstance(value, BaseException) else getattr(
            value, "exception", None
        )
        kind = type(exception).__name__ if isinstance(exception, BaseException) else "ok"
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def w7_nested(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    outer, inner, seconds = settings["outer"], settings["inner"], settings["seconds"]
    variants = []
    if not isinstance(peer, Msgflux) or peer.sync_api:
        variants.append((peer.name, lambda: peer.nested(outer, inner, seconds)))
    if isinstance(peer, Msgflux) and not peer.original:
        variants.append(
            (f"{peer.name} async API", lambda: peer.anested(outer, inner, seconds))
        )
    rows = []
    for label, call in variants:
        runs = repeat(lambda: run_with_watchdog(call, options["deadlock_after"]), options)
        rows.append(row(label, "ms", [s * 1e3 for s in runs]))
    return rows


class Deadlock(Exception):
    """Raised when a run has not finished long after it should have."""


def run_with_watchdog(call: Callable[[], Any], limit: float) -> float:
    """Run ``call`` in a daemon thread and return its duration in seconds.

    Raises:
        Deadlock: If it has not returned after ``limit`` seconds. The thread
            is left behind; the worker process ends with ``os._exit``.
    """
    outcome: Dict[str, Any] = {}

    def target() -> None:
        started = time.perf_counter()
        try:
            call()
        except BaseException as exc:  # reported in the caller's thread
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise Deadlock(f"no result after {limit:.0f} s: deadlocked")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["seconds"]


# Memory -------------------------------------------------------------------


def read_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise NotApplicable(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets the peak resident set size (Linux 4.0+).
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def w8_memory(peer: Peer, settings, options) -> List[Dict[str, Any]]:
    """Measure one run's peak memory per task, beyond inputs and results.

    The inputs are built and a small batch is run first, so the worker pool
    and imports are in place before the baseline. The results tuple or list
    is then subtracted, since the results themselves are not overhead.
    """
    if not os.path.exists("/proc/self/clear_refs"):
        raise NotApplicable("needs Linux /proc to read peak memory")
    if isinstance(peer, Processes) or getattr(peer, "backend", None) == "loky":
        raise NotApplicable("the tasks' memory is spread over worker processes")
    count = settings["tasks"]
    peer.map(nothing, peer.prepare(range(100)))
    prepared = peer.prepare(range(count))
    gc.collect()
    reset_peak_rss()
    baseline = read_status_kib("VmRSS")

    results = peer.map(nothing, prepared)

    peak = read_status_kib("VmHWM")
    check_length(results, count, peer.name)
    results_bytes = sys.getsizeof(results)
    per_task = ((peak - baseline) * 1024 - results_bytes) / count
    return [row(peer.name, "bytes per task", [per_task])]


WORKLOADS = {
    "W1-100k": w1_trivial_calls,
    "W1-10k": w1_trivial_calls,
    "W2": w2_blocking_sleeps,
    "W3": w3_sha256,
    "W4": w4_pure_python,
    "W5": w5_coroutines,
    "W6": w6_deadline,
    "W7": w7_nested,
    "W8-100k": w8_memory,
    "W8-1M": w8_memory,
}
