"""Benchmark msgflux against its peers on workloads W1-W8, in one command.

    python benches/run.py            # the full suite, about 15 minutes on 2 cores
    python benches/run.py --quick    # fewer runs, no 1,000,000-task memory run
    python benches/run.py --smoke    # tiny sizes: checks that every path runs

Each (workload, peer) cell runs in its own worker process (``worker.py``). The
original pure-Python msgflux 0.5.1 has the same import name as this package,
so the first run installs it from PyPI into its own virtual environment under
``benches/.cache/`` and runs its cells with that environment's Python.

The report is Markdown on stdout; it and the raw results (JSON) are also
written to ``bench-results/``. Nothing here asserts on speed: the targets
table shows which targets the measured numbers meet.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
sys.path.insert(0, str(BENCHES))

from peers import PEER_NAMES  # noqa: E402
from workloads import SETTINGS, TITLES, WORKLOADS  # noqa: E402

logger = logging.getLogger("benches")

ORIGINAL_VERSION = "0.5.1"
ORIGINAL_PEER = "msgflux-original"

# Runs per cell in each mode, and processes per memory (W8) cell: every W8
# measurement needs a fresh process, because freed memory stays in the heap.
MODES = {
    "full": dict(runs=5, min_seconds=1.0, memory_runs=3, warmup=True, budget=30.0,
                 deadlock_after=20.0),
    "quick": dict(runs=3, min_seconds=0.3, memory_runs=1, warmup=True, budget=10.0,
                  deadlock_after=20.0),
    "smoke": dict(runs=1, min_seconds=0.0, memory_runs=1, warmup=False, budget=5.0,
                  deadlock_after=10.0),
}

CELL_TIMEOUT = 900.0


# ---------------------------------------------------------------------------
# The original msgflux, in its own virtual environment


def original_python(cache: Path) -> Path:
    """Return the Python of a virtual environment holding msgflux 0.5.1,
    creating the environment and installing it from PyPI when needed."""
    venv = cache / f"msgflux-{ORIGINAL_VERSION}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "from msgflux.version import __version__; print(__version__)"]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == ORIGINAL_VERSION:
            return python
    logger.info("installing msgflux %s into %s", ORIGINAL_VERSION, venv)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"msgflux=={ORIGINAL_VERSION}"],
        check=True,
    )
    subprocess.run(probe, check=True, capture_output=True)
    return python


# ---------------------------------------------------------------------------
# Running cells


def run_cell(
    python: Path, workload: str, peer: str, mode: str, settings: Dict[str, Any]
) -> Dict[str, Any]:
    """Run one cell in a worker process and return its result dict."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [
            str(python), str(BENCHES / "worker.py"),
            "--workload", workload, "--peer", peer, "--mode", mode,
            "--runs", str(settings["runs"]),
            "--budget", str(settings["budget"]),
            "--min-seconds", str(settings["min_seconds"]),
            "--deadlock-after", str(settings["deadlock_after"]),
            "--out", str(out),
        ]
        if not settings["warmup"]:
            command.append("--no-warmup")
        # Output goes to a file, not a pipe: a pipe would also wait for any
        # process the worker leaves behind.
        errors = Path(scratch) / "stderr.txt"
        with open(errors, "w") as stderr:
            try:
                completed = subprocess.run(
                    command, stdout=subprocess.DEVNULL, stderr=stderr,
                    timeout=CELL_TIMEOUT, cwd=scratch,
                )
            except subprocess.TimeoutExpired:
                return dict(workload=workload, peer=peer, label=peer, rows=[],
                            status="error", reason=f"no result within {CELL_TIMEOUT:.0f} s")
        error_text = errors.read_text(errors="replace").strip()
        if not out.exists():
            tail = " | ".join(error_text.splitlines()[-3:])
            return dict(workload=workload, peer=peer, label=peer, rows=[], status="error",
                        reason=f"worker exited with status {completed.returncode}: {tail}")
        result = json.loads(out.read_text(encoding="utf-8"))
    if result["status"] == "error":
        logger.warning("%s %s failed:\n%s", workload, peer, error_text)
    return result


def merge_memory_runs(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Fold the one-run results of several W8 processes into one result."""
    merged = dict(results[0])
    good = [r for r in results if r["status"] == "ok"]
    if not good:
        return merged
    merged = dict(good[0], rows=[dict(good[0]["rows"][0], runs=[])])
    for result in good:
        merged["rows"][0]["runs"].extend(result["rows"][0]["runs"])
    return merged


def run_suite(
    workloads: Sequence[str], peers: Sequence[str], mode: str, original: Optional[Path]
) -> List[Dict[str, Any]]:
    settings = MODES[mode]
    results = []
    for workload in workloads:
        for peer in peers:
            python = original if peer == ORIGINAL_PEER else Path(sys.executable)
            if python is None:
                continue
            started = time.perf_counter()
            if workload.startswith("W8"):
                runs = [run_cell(python, workload, peer, mode, settings)]
                while (
                    len(runs) < settings["memory_runs"]
                    and runs[0]["status"] == "ok"
                    and time.perf_counter() - started < settings["budget"]
                ):
                    runs.append(run_cell(python, workload, peer, mode, settings))
                result = merge_memory_runs(runs)
            else:
                result = run_cell(python, workload, peer, mode, settings)
            # The load average shows whether other work shared the CPUs.
            result["load"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            logger.info(
                "%-8s %-17s %-8s %6.1f s  load %4.1f  %s", workload, peer,
                result["status"], time.perf_counter() - started, result["load"] or 0.0,
                summarize_cell(result),
            )
            results.append(result)
    return results


def summarize_cell(result: Dict[str, Any]) -> str:
    if result["status"] != "ok":
        return result.get("reason", "")
    return "; ".join(
        f"{row['label']}: {statistics.median(row['runs']):.3g} {row['unit']}"
        for row in result["rows"]
    )


# ---------------------------------------------------------------------------
# The report


def describe_machine() -> Dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "unknown"
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
            memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return dict(
        cpu=cpu,
        cpus=str(os.cpu_count()),
        memory=memory,
        system=f"{platform.system()} {platform.release()} {platform.machine()}",
        python=f"{platform.python_implementation()} {platform.python_version()}",
    )


def load_average() -> str:
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def core_build_time() -> str:
    """Return when the compiled core that the workers import was last built."""
    import importlib.util

    spec = importlib.util.find_spec("msgflux")
    if spec is None or not spec.submodule_search_locations:
        return "unknown"
    builds = sorted(Path(spec.submodule_search_locations[0]).glob("_core*"))
    if not builds:
        return "unknown"
    built = datetime.datetime.fromtimestamp(builds[0].stat().st_mtime, datetime.timezone.utc)
    return built.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_commit() -> str:
    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True
        )
        return completed.stdout.strip() if completed.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", "src", "python", "Cargo.toml"):
        commit += " with uncommitted changes to src/ or python/"
    return commit


def median(row: Dict[str, Any]) -> float:
    return statistics.median(row["runs"])


def format_value(value: float, unit: str) -> str:
    if unit == "µs per task":
        return f"{value:.2f} µs"
    if unit == "bytes per task":
        # Adding 0.0 turns a rounded -0 into 0.
        return f"{round(value) + 0.0:.0f} B"
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def format_load(load: Optional[float]) -> str:
    return "" if load is None else f"{load:.1f}"


def workload_table(workload: str, results: List[Dict[str, Any]], mode: str) -> List[str]:
    rows = [
        dict(row, load=r.get("load"))
        for r in results if r["status"] == "ok" for row in r["rows"]
    ]
    skipped = [r for r in results if r["status"] != "ok"]
    title = TITLES[workload] + (" (smoke sizes)" if mode == "smoke" else "")
    lines = [f"### {title}", ""]
    if workload == "W6":
        lines += ["| peer and API | median return | slowest return | slots | load |",
                  "|---|---:|---:|---|---:|"]
        for row in sorted(rows, key=median):
            lines.append(
                f"| {row['label']} | {median(row):.1f} ms | {max(row['runs']):.1f} ms "
                f"| {row['slots']} | {format_load(row['load'])} |"
            )
    else:
        unit = rows[0]["unit"] if rows else ""
        best = min((median(row) for row in rows), default=0.0)
        lines += [f"| peer | median ({unit}) | ratio to best | runs | load |",
                  "|---|---:|---:|---:|---:|"]
        for row in sorted(rows, key=median):
            # A memory delta can be zero or negative when the run reuses
            # freed heap, and then no ratio is meaningful.
            ratio = f"{median(row) / best:.2f}" if best > 0 else "–"
            lines.append(
                f"| {row['label']} | {format_value(median(row), unit)} "
                f"| {ratio} | {len(row['runs'])} | {format_load(row['load'])} |"
            )
    for result in skipped:
        lines.append(f"| {result['label']} | {result['status']}: {result['reason']} | | | |")
    return lines + [""]


def find_row(results: List[Dict[str, Any]], workload: str, peer: str, index: int = 0):
    for result in results:
        if result["workload"] == workload and result["peer"] == peer:
            if result["status"] == "ok" and len(result["rows"]) > index:
                return result["rows"][index]
    return None


def evaluate_targets(results: List[Dict[str, Any]]) -> List[List[str]]:
    """Return rows of (target, measured, met) for the msgflux targets."""
    table: List[List[str]] = []

    def add(target: str, measured: Optional[str], met: Optional[bool]) -> None:
        if met is None:
            verdict = "not measured"
        else:
            verdict = "met" if met else "missed"
        table.append([target, measured or "", verdict])

    for workload in ("W1-100k", "W1-10k"):
        ours, loop = find_row(results, workload, "msgflux"), find_row(results, workload, "loop")
        if ours and loop:
            ratio = median(ours) / median(loop)
            add(f"{workload}: ≤ 3× the plain loop per task",
                f"{median(ours):.2f} µs vs {median(loop):.3f} µs ({ratio:.1f}×)", ratio <= 3)
        else:
            add(f"{workload}: ≤ 3× the plain loop per task", None, None)

    ours = find_row(results, "W2", "msgflux")
    add("W2: ≤ 30 ms", ours and f"{median(ours):.1f} ms", ours and median(ours) <= 30)

    ours, loop = find_row(results, "W3", "msgflux"), find_row(results, "W3", "loop")
    if ours and loop:
        speedup = median(loop) / median(ours)
        add("W3: ≥ 1.9× the plain loop", f"{speedup:.2f}×", speedup >= 1.9)
    else:
        add("W3: ≥ 1.9× the plain loop", None, None)

    ours, loop = find_row(results, "W4", "msgflux"), find_row(results, "W4", "loop")
    if ours and loop:
        ratio = median(ours) / median(loop)
        add("W4: no slower than the plain loop",
            f"{median(ours):.0f} ms vs {median(loop):.0f} ms ({ratio:.2f}×)", ratio <= 1.0)
    else:
        add("W4: no slower than the plain loop", None, None)

    for ours_peer, theirs_peer, loop_name in (
        ("msgflux", "asyncio", "asyncio loop"), ("msgflux-uvloop", "uvloop", "uvloop")
    ):
        ours, theirs = find_row(results, "W5", ours_peer), find_row(results, "W5", theirs_peer)
        target = f"W5: ≤ asyncio.gather on the same loop ({loop_name})"
        if ours and theirs:
            add(target, f"{median(ours):.1f} ms vs {median(theirs):.1f} ms",
                median(ours) <= median(theirs))
        else:
            add(target, None, None)

    w6 = [r for r in results if r["workload"] == "W6" and r["peer"] == "msgflux"]
    for row in (w6[0]["rows"] if w6 and w6[0]["status"] == "ok" else []):
        late = max(row["runs"]) - row["timeout_ms"]
        expected = "1 TimeoutError" if row["label"].endswith("wait_for") else (
            "3 ok, 1 TimeoutError")
        add(f"W6 {row['label']}: returns ≤ 10 ms after the deadline",
            f"slowest {late:+.1f} ms; {row['slots']}",
            late <= 10 and row["slots"] == expected)
    if not w6:
        add("W6: every API returns ≤ 10 ms after the deadline", None, None)

    ours = find_row(results, "W7", "msgflux")
    add("W7: ≤ 70 ms", ours and f"{median(ours):.1f} ms", ours and median(ours) <= 70)

    for workload in ("W8-100k", "W8-1M"):
        ours = find_row(results, workload, "msgflux")
        add(f"{workload}: ≤ 200 bytes per task", ours and f"{median(ours):.0f} B",
            ours and median(ours) <= 200)
    return table


def render_report(run: Dict[str, Any]) -> str:
    """Render the Markdown report of a run document (see ``main``)."""
    machine, mode, results = run["machine"], run["mode"], run["results"]
    settings = MODES[mode]
    flag = "" if mode == "full" else " --" + mode
    lines = [
        f"Measured {run['date']} with `python benches/run.py{flag}` "
        f"in {run['seconds'] / 60:.1f} minutes.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cpus']} logical CPUs, "
        f"{machine['memory']} RAM, {machine['system']}",
        f"- Python: {machine['python']}; msgflux commit {run['commit']}, compiled "
        f"core built {run.get('core_built', 'at an unrecorded time')}",
        f"- Load average (1, 5, 15 min) before the run: {run['load_before']}; after "
        f"it: {run['load_after']}. Other work on the machine slows the results down.",
        "- Each cell ran in its own process: "
        + ("one untimed warm-up run, then " if settings["warmup"] else "")
        + f"at least {settings['runs']} timed runs, more until they filled "
        f"{settings['min_seconds']:g} s, but 3 once a cell passed {settings['budget']:.0f} s. "
        f"Each W8 run had a fresh process, up to {settings['memory_runs']} per cell "
        "within the same time. Tables show medians, and the ratio is to the best "
        "median in the same table. The load column is the 1-minute load average "
        f"after the cell: above {machine['cpus']}, other work competed for the CPUs.",
        "",
    ]
    workloads = run["workloads"]
    for workload in workloads:
        cells = [r for r in results if r["workload"] == workload]
        if cells:
            lines += workload_table(workload, cells, mode)
    lines += ["### Targets (msgflux, default settings)", "",
              "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {target} | {measured} | {met} |" for target, measured, met in
              evaluate_targets(results)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Command line


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark msgflux against its peers.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="3 runs per cell and no 1,000,000-task memory runs")
    size.add_argument("--smoke", action="store_true",
                      help="tiny sizes and 1 run per cell, to check every path runs")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated workloads to run (default: all)")
    parser.add_argument("--peers", default=",".join(PEER_NAMES),
                        help="comma-separated peers to run (default: all)")
    parser.add_argument("--no-original", action="store_true",
                        help=f"skip msgflux {ORIGINAL_VERSION}, which needs PyPI on first use")
    parser.add_argument("--output-dir", type=Path, default=REPO / "bench-results",
                        help="folder for report.md and results.json (default: bench-results/)")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="print the report of a saved results.json and run nothing")
    args = parser.parse_args(argv)
    for name, known in (("workloads", WORKLOADS), ("peers", PEER_NAMES)):
        chosen = [item for item in getattr(args, name).split(",") if item]
        unknown = [item for item in chosen if item not in known]
        if unknown:
            parser.error(f"unknown {name} {unknown}; choose from {', '.join(known)}")
        setattr(args, name, chosen)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.render is not None:
        sys.stdout.write(render_report(json.loads(args.render.read_text(encoding="utf-8"))))
        return 0
    mode = "full"
    if args.smoke:
        mode = "smoke"
    elif args.quick:
        mode = "quick"
    peers = list(args.peers)
    original = None
    if ORIGINAL_PEER in peers and not args.no_original:
        original = original_python(BENCHES / ".cache")
    elif ORIGINAL_PEER in peers:
        peers.remove(ORIGINAL_PEER)

    # Quick mode has no 1,000,000-task memory run.
    workloads = [w for w in args.workloads if w in SETTINGS[mode]]
    run = dict(
        mode=mode,
        workloads=workloads,
        machine=describe_machine(),
        commit=describe_commit(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        load_before=load_average(),
        core_built=core_build_time(),
    )
    started = time.perf_counter()
    run["results"] = run_suite(workloads, peers, mode, original)
    run.update(seconds=time.perf_counter() - started, load_after=load_average())
    if core_build_time() != run["core_built"]:
        run["core_built"] += f", rebuilt during the run at {core_build_time()}"
    report = render_report(run)

    sys.stdout.write(report)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "report.md").write_text(report, encoding="utf-8")
    (args.output_dir / "results.json").write_text(
        json.dumps(run, indent=1) + "\n", encoding="utf-8"
    )
    logger.info("wrote %s and results.json", args.output_dir / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
