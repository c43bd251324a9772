"""A tiny run of every benchmark workload, so the suite cannot rot unnoticed.

These run the workers with the "smoke" sizes, which finish in about a second
each. They check that each path runs and reports a measurement, never how
fast: speed is measured only by ``python benches/run.py``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHES = Path(__file__).resolve().parents[1] / "benches"
WORKLOADS = (
    "W1-100k", "W1-10k", "W2", "W3", "W4", "W5", "W6", "W7", "W8-100k", "W8-1M",
)
SYNC_PEERS = (
    "loop", "msgflux", "threads-sized", "threads-default",
    "asyncio", "uvloop", "joblib-threading", "joblib-loky", "processes",
)


def run_worker(tmp_path: Path, workload: str, peer: str) -> dict:
    out = tmp_path / f"{workload}-{peer}.json"
    subprocess.run(
        [
            sys.executable, str(BENCHES / "worker.py"),
            "--mode", "smoke", "--runs", "1", "--min-seconds", "0", "--no-warmup",
            "--workload", workload, "--peer", peer, "--out", str(out),
        ],
        check=True,
        timeout=50,
        capture_output=True,
        cwd=tmp_path,
    )
    return json.loads(out.read_text())


def load_runner():
    spec = importlib.util.spec_from_file_location("bench_run", BENCHES / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("workload", WORKLOADS)
def test_msgflux_workload_measures(tmp_path, workload):
    result = run_worker(tmp_path, workload, "msgflux")

    assert result["status"] == "ok", result.get("reason")
    assert result["rows"]
    for row in result["rows"]:
        assert len(row["runs"]) == 1
        assert isinstance(row["runs"][0], float)


@pytest.mark.parametrize("peer", SYNC_PEERS)
def test_peer_runs_trivial_calls(tmp_path, peer):
    if peer.startswith("joblib"):
        pytest.importorskip("joblib")
    if "uvloop" in peer:
        pytest.importorskip("uvloop")

    result = run_worker(tmp_path, "W1-10k", peer)

    assert result["status"] == "ok", result.get("reason")
    assert result["rows"][0]["unit"] == "µs per task"


def test_msgflux_on_uvloop_runs_coroutines(tmp_path):
    pytest.importorskip("uvloop")

    result = run_worker(tmp_path, "W5", "msgflux-uvloop")

    assert result["status"] == "ok", result.get("reason")
    assert result["label"] == "msgflux, uvloop"


def test_deadline_keeps_finished_slots(tmp_path):
    result = run_worker(tmp_path, "W6", "msgflux")

    slots = {row["label"]: row["slots"] for row in result["rows"]}
    assert slots["msgflux map_gather"] == "3 ok, 1 TimeoutError"
    assert slots["msgflux amap_gather"] == "3 ok, 1 TimeoutError"
    assert slots["msgflux wait_for"] == "1 TimeoutError"


def test_nested_workload_both_apis(tmp_path):
    result = run_worker(tmp_path, "W7", "msgflux")

    labels = [row["label"] for row in result["rows"]]
    assert labels == ["msgflux", "msgflux async API"]


def test_plain_loop_has_no_deadline_workload(tmp_path):
    result = run_worker(tmp_path, "W6", "loop")

    assert result["status"] == "n/a"
    assert "cannot stop waiting" in result["reason"]


def test_thread_pool_has_no_coroutine_workload(tmp_path):
    result = run_worker(tmp_path, "W5", "threads-default")

    assert result["status"] == "n/a"


def test_runner_writes_report_and_results(tmp_path):
    completed = subprocess.run(
        [
            sys.executable, str(BENCHES / "run.py"), "--smoke", "--no-original",
            "--peers", "loop,msgflux", "--workloads", "W1-10k,W2",
            "--output-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=50,
    )

    assert completed.returncode == 0, completed.stderr
    report = (tmp_path / "report.md").read_text()
    assert report == completed.stdout
    assert "logical CPUs" in report
    assert "### W1: 10,000 trivial calls (smoke sizes)" in report
    assert "| W2: ≤ 30 ms |" in report
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert len(results) == 4


def test_runner_rejects_unknown_workload():
    completed = subprocess.run(
        [sys.executable, str(BENCHES / "run.py"), "--smoke", "--workloads", "W9"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 2
    assert "unknown workloads ['W9']" in completed.stderr


def test_targets_verdicts():
    runner = load_runner()

    def cell(workload, peer, value, unit="ms"):
        row = dict(label=peer, unit=unit, runs=[value])
        return dict(workload=workload, peer=peer, status="ok", rows=[row])

    verdicts = {
        target: verdict
        for target, _, verdict in runner.evaluate_targets([
            cell("W2", "msgflux", 31.0),
            cell("W4", "msgflux", 90.0),
            cell("W4", "loop", 100.0),
        ])
    }

    assert verdicts["W2: ≤ 30 ms"] == "missed"
    assert verdicts["W4: no slower than the plain loop"] == "met"
    assert verdicts["W7: ≤ 70 ms"] == "not measured"
