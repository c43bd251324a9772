"""Benchmark the "processes" and "dask" backends against their peers.

    python benches/backends.py             # 5 runs of W4, 3 of W1 on Dask
    python benches/backends.py --runs 2    # fewer runs of everything

W4 is 16 pure-Python loops of 1,500,000 additions (about 50 ms each on
CPython 3.11 on the machine in docs/backends.md). It runs as a plain loop,
on msgflux's threads and processes backends, on ProcessPoolExecutor (started
by forkserver, the default from Python 3.14 on) and on joblib's loky, each
with as many workers as CPUs. W1 is 10,000 trivial calls. W1 and W4 also run
through the "dask" backend and through Dask's own ``client.map`` plus
``client.gather`` on one LocalCluster (two worker processes of one thread
each, on 127.0.0.1) that this script starts and stops.

Every runner makes one untimed warm-up call first, so pools and workers are
up. The table gives the median, minimum and maximum of the timed runs.
Nothing here asserts on speed. Needs: pip install joblib distributed
cloudpickle.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

logger = logging.getLogger("benches.backends")

W4_TASKS = 16
W4_ITERATIONS = 1_500_000
W1_TASKS = 10_000


def count_up(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i
    return total


def trivial(value: int) -> int:
    return value


def forked_halves(inputs: List[int]) -> None:
    """W4 split evenly over one forked child per CPU, results dropped: the
    most any runner could gain on this machine at this moment.

    The children only add integers and call os._exit, so forking while
    msgflux's threads exist cannot leave them waiting on a lock.
    """
    workers = os.cpu_count() or 1
    children = []
    for part in range(workers):
        pid = os.fork()
        if pid == 0:
            for n in inputs[part::workers]:
                count_up(n)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def check(results: Any, expected: List[Any], label: str) -> None:
    if results is None:
        return  # The ceiling run returns nothing to check.
    if list(results) != expected:
        raise RuntimeError(f"{label} returned wrong results: {list(results)[:3]}...")


def local_w4_runners() -> Tuple[List[Tuple[str, Callable[[], Any]]], Any]:
    """Return the W4 runners that need no cluster, and the executor to shut down."""
    import joblib

    import msgflux.nn.functional as F

    workers = os.cpu_count() or 1
    inputs = [W4_ITERATIONS] * W4_TASKS
    args_list = [(n,) for n in inputs]
    executor = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("forkserver")
    )
    loky = joblib.Parallel(n_jobs=workers, backend="loky")
    runners = [
        ("plain loop", lambda: [count_up(n) for n in inputs]),
        ("forked halves (ceiling)", lambda: forked_halves(inputs)),
        ("msgflux threads", lambda: F.map_gather(count_up, args_list=args_list)),
        ("msgflux processes", lambda: F.map_gather(
            count_up, args_list=args_list, backend="processes")),
        ("ProcessPoolExecutor", lambda: list(executor.map(count_up, inputs))),
        ("joblib loky", lambda: loky(joblib.delayed(count_up)(n) for n in inputs)),
    ]
    return runners, executor


def dask_runners(
    client: Any, workload: str
) -> List[Tuple[str, Callable[[], Any]]]:
    import msgflux.nn.functional as F

    if workload == "W4":
        f, inputs = count_up, [W4_ITERATIONS] * W4_TASKS
    else:
        f, inputs = trivial, list(range(W1_TASKS))
    args_list = [(n,) for n in inputs]
    return [
        ("msgflux dask", lambda: F.map_gather(f, args_list=args_list, backend="dask")),
        ("dask client.map", lambda: client.gather(client.map(f, inputs, pure=False))),
    ]


def measure(
    workload: str,
    runners: List[Tuple[str, Callable[[], Any]]],
    expected: List[Any],
    runs: int,
) -> List[Dict[str, Any]]:
    """Time each runner ``runs`` times, taking turns so that a change in the
    machine's load hits every runner alike. One untimed, checked call each
    comes first."""
    rows = [
        {"workload": workload, "runner": label, "times": []} for label, _ in runners
    ]
    for label, call in runners:
        check(call(), expected, label)
    for run in range(runs):
        logger.info("%s: run %d of %d", workload, run + 1, runs)
        for row, (_label, call) in zip(rows, runners):
            started = time.perf_counter()
            call()
            row["times"].append(time.perf_counter() - started)
    return rows


def table(rows: List[Dict[str, Any]], baselines: Dict[str, str]) -> str:
    lines = [
        "| workload | runner | median (s) | min (s) | max (s) | vs baseline |",
        "|---|---|---:|---:|---:|---:|",
    ]
    medians = {
        (row["workload"], row["runner"]): statistics.median(row["times"])
        for row in rows
    }
    for row in rows:
        median = medians[(row["workload"], row["runner"])]
        baseline = medians[(row["workload"], baselines[row["workload"]])]
        lines.append(
            f"| {row['workload']} | {row['runner']} | {median:.3f} | "
            f"{min(row['times']):.3f} | {max(row['times']):.3f} | "
            f"{baseline / median:.2f}× |"
        )
    return "\n".join(lines)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import cloudpickle
    import distributed
    import joblib

    return (
        f"{datetime.date.today().isoformat()}, {model}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()} ({sys.platform}), "
        f"distributed {distributed.__version__}, joblib {joblib.__version__}, "
        f"cloudpickle {cloudpickle.__version__}, load average before the run "
        f"{os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None,
                        help="timed runs per runner (default: 5 for W4, 3 for W1)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    w4_runs = options.runs or 5
    w1_runs = options.runs or 3
    w4_expected = [count_up(W4_ITERATIONS)] * W4_TASKS
    header = machine()

    # The local runners go first, with no idle cluster beside them.
    runners, executor = local_w4_runners()
    try:
        rows = measure("W4", runners, w4_expected, w4_runs)
    finally:
        executor.shutdown()

    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
    )
    client = distributed.Client(cluster)
    try:
        rows += measure("W4", dask_runners(client, "W4"), w4_expected, w4_runs)
        w1_expected = list(range(W1_TASKS))
        rows += measure("W1", dask_runners(client, "W1"), w1_expected, w1_runs)
    finally:
        client.close()
        cluster.close()

    single = statistics.median(
        next(r["times"] for r in rows if r["runner"] == "plain loop")
    ) / W4_TASKS
    print(f"Measured {header}.\n")
    print(f"W4: {W4_TASKS} loops of {W4_ITERATIONS:,} additions "
          f"({single * 1000:.0f} ms each in the plain loop), {w4_runs} runs; "
          f"W1: {W1_TASKS:,} calls of an identity function, {w1_runs} runs.\n")
    print(table(rows, {"W4": "plain loop", "W1": "dask client.map"}))


if __name__ == "__main__":
    main()
