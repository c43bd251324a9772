"""Scale: a million tasks, ten thousand blocked threads, many gathers in a row.

Each runs in a fresh interpreter so that memory and thread counts are its own.
"""

import json

import pytest

from conftest import run_python

PEAK_MEMORY = """
    import json, sys
    import msgflux.nn.functional as F
    count, run_gather = int(sys.argv[1]), sys.argv[2] == "gather"
    args = [()] * count
    F.map_gather(int, args_list=[()])  # start the pool in both runs
    if run_gather:
        results = F.map_gather(int, args_list=args)
        assert len(results) == count
        assert results[-1] == 0
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec() from the
    # forked parent, so it would report the test runner's own peak.
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    print(json.dumps({"peak": int(line.split()[1]) * 1024}))
"""


def peak_bytes(count, mode):
    # Two workers, so the measure is the batch's memory and not the stacks of
    # workers a busy machine can make the pool add.
    result = run_python(
        PEAK_MEMORY, timeout=120, args_extra=[str(count), mode], env={"MSGFLUX_MAX_WORKERS": "2"}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["peak"]


def peak_bytes_per_task(count):
    """Peak memory of a gather beyond its inputs, including the result tuple."""
    return (peak_bytes(count, "gather") - peak_bytes(count, "inputs only")) / count


def test_million_task_gather_uses_under_200_bytes_per_task():
    assert peak_bytes_per_task(1_000_000) < 200


def test_gather_memory_grows_linearly_with_the_task_count():
    peaks = [peak_bytes(count, "gather") for count in (1_000_000, 2_000_000, 3_000_000)]

    # Each extra million tasks costs the same memory, within 25 %.
    first_step, second_step = peaks[1] - peaks[0], peaks[2] - peaks[1]
    assert first_step > 0, peaks
    assert 0.75 < second_step / first_step < 1.25, peaks


def test_10000_blocking_tasks_run_at_once_with_a_raised_limit():
    result = run_python(
        """
        import threading
        import msgflux, msgflux.nn.functional as F
        msgflux.configure(max_workers=10_000)
        barrier = threading.Barrier(10_000, timeout=60)
        results = F.map_gather(barrier.wait, args_list=[()] * 10_000)
        print(len(set(results)))
        """,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10000"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_back_to_back_gathers_leave_memory_and_threads_flat(kind):
    result = run_python(
        """
        import asyncio, json, os, sys
        import msgflux, msgflux.nn.functional as F

        async def negate(x):
            return -x

        def rss():
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        def one_round():
            if sys.argv[1] == "sync":
                F.map_gather(abs, args_list=[(-i,) for i in range(100)])
                F.bcast_gather([negate, abs], 3, timeout=5)
            else:
                asyncio.run(F.amap_gather(negate, args_list=[(i,) for i in range(100)]))

        for _ in range(200):
            one_round()
        before = (rss(), msgflux.pool_stats()["workers"])
        for _ in range(1000):
            one_round()
        after = (rss(), msgflux.pool_stats()["workers"])
        print(json.dumps({"before": before, "after": after, "cpus": os.cpu_count()}))
        """,
        timeout=120,
        args_extra=[kind],
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (rss_before, workers_before), (rss_after, workers_after) = report["before"], report["after"]
    # Tolerance: 4 MiB of RSS, and 4 workers that a busy machine can make
    # the pool start while tasks wait to be scheduled.
    assert rss_after - rss_before < 4 * 1024 * 1024
    assert workers_after <= max(workers_before, report["cpus"]) + 4
