"""The "dask" backend against a real two-worker LocalCluster on 127.0.0.1."""

import asyncio
import os
import time
import traceback

import dask
import distributed
import pytest

import msgflux.nn.functional as F
from conftest import run_python
from msgflux import TaskError
from msgflux._backends import configure_dask

# A task that kills its worker runs again elsewhere until it has killed this
# many + 1 workers. One retry keeps the poison test short.
ALLOWED_FAILURES = 1


def start_cluster():
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            worker_dashboard_address="127.0.0.1:0",
        )
    return cluster, distributed.Client(cluster)


@pytest.fixture(scope="module")
def client():
    """A client of the module's cluster, whose workers no test kills."""
    cluster, client = start_cluster()
    try:
        # Dask starts some helper threads on first use; start them here so
        # the per-test check for leftover threads does not count them.
        assert F.map_gather(abs, args_list=[(-1,), (-2,)], backend="dask") == (1, 2)
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def own_client(client):
    """A client of a cluster of the test's own, for tests that kill workers.

    The nanny's threads for a restarted worker live as long as its cluster,
    so that cluster must end with the test.
    """
    cluster, own = start_cluster()
    configure_dask(own)
    try:
        yield own
    finally:
        configure_dask(None)
        own.close()
        cluster.close()


def add(x, y):
    return x + y


def pid():
    return os.getpid()


def fail_with(message):
    raise ValueError(message)


def wait_for_release(name):
    # Blocks on a cluster-wide event that the test sets when it is done.
    distributed.Event(name).wait(60)
    return "released"


def kill_worker_once(marker, value):
    # The first run creates the marker and kills its worker; the scheduler
    # then runs the task again on the other worker.
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return value
    os.close(fd)
    os._exit(1)


def kill_worker_always():
    os._exit(1)


def nested_pids(count):
    inner = F.map_gather(pid, args_list=[()] * count)
    return os.getpid(), inner


def test_results_keep_input_order(client):
    results = F.map_gather(add, args_list=[(i, 100) for i in range(20)], backend="dask")

    assert results == tuple(range(100, 120))


def test_tasks_run_in_worker_processes(client):
    pids = F.map_gather(pid, args_list=[()] * 4, backend="dask")

    assert os.getpid() not in pids


def test_lambda_and_closure_run_on_workers(client):
    offset = 5
    results = F.scatter_gather(
        [lambda x: x * 2, lambda x: x + offset], [(4,), (4,)], backend="dask"
    )

    assert results == (8, 9)


def test_callable_tuple_argument_passes_unchanged(client):
    (result,) = F.map_gather(lambda t: t, args_list=[((abs, -3),)], backend="dask")

    assert result == (abs, -3)


def test_failed_task_keeps_exception_type_and_message(client):
    results = F.scatter_gather([fail_with, add], [("bad 0",), (1, 2)], backend="dask")

    assert isinstance(results[0], TaskError)
    assert type(results[0].exception) is ValueError
    assert str(results[0].exception) == "bad 0"
    assert results[1] == 3


def test_failed_task_keeps_the_worker_traceback(client):
    (result,) = F.map_gather(fail_with, args_list=[("deep",)], backend="dask")

    frames = traceback.extract_tb(result.exception.__traceback__)
    assert "fail_with" in [frame.name for frame in frames]


def test_system_exit_in_task_is_its_failure(client):
    (result,) = F.bcast_gather([lambda: exit(3)], backend="dask")

    assert isinstance(result.exception, SystemExit)


def test_timeout_returns_at_deadline_with_timeout_slots(client):
    event = distributed.Event("msgflux-test-timeout")
    started = time.monotonic()
    try:
        results = F.scatter_gather(
            [wait_for_release, add], [(event.name,), (1, 1)],
            backend="dask", timeout=2,
        )
        elapsed = time.monotonic() - started
    finally:
        event.set()

    assert elapsed < 3
    assert isinstance(results[0].exception, TimeoutError)
    assert "2 s timeout" in str(results[0].exception)
    assert results[1] == 2


def test_worker_killed_mid_gather_is_retried_by_dask(own_client, tmp_path):
    marker = str(tmp_path / "killed")

    results = F.map_gather(
        kill_worker_once, args_list=[(marker, i) for i in range(4)],
        backend="dask", timeout=120,
    )

    assert os.path.exists(marker)
    assert results == (0, 1, 2, 3)


def test_task_killing_every_worker_fails_with_killed_worker(own_client):
    results = F.bcast_gather(
        [kill_worker_always, lambda: "ok"], backend="dask", timeout=120
    )

    assert isinstance(results[0], TaskError)
    assert type(results[0].exception).__name__ == "KilledWorker"
    assert results[1] == "ok"


def test_nested_gather_runs_on_threads(client):
    ((outer, inner),) = F.map_gather(nested_pids, args_list=[(3,)], backend="dask")

    assert inner == (outer, outer, outer)


def test_amap_gather_runs_on_dask(client, run_async):
    results = run_async(
        F.amap_gather(add, args_list=[(i, 1) for i in range(5)], backend="dask")
    )

    assert results == (1, 2, 3, 4, 5)


def test_amap_gather_timeout_keeps_the_loop_running(client):
    event = distributed.Event("msgflux-test-async-timeout")
    ticks = []

    async def main():
        async def tick():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.05)

        ticker = asyncio.ensure_future(tick())
        try:
            return await F.amap_gather(
                wait_for_release, args_list=[(event.name,)], backend="dask", timeout=1
            )
        finally:
            ticker.cancel()

    try:
        (result,) = asyncio.run(main())
    finally:
        event.set()

    assert isinstance(result.exception, TimeoutError)
    assert len(ticks) >= 5


def test_configured_client_is_used(client):
    configure_dask(client)
    try:
        with F.backend("dask"):
            results = F.map_gather(add, args_list=[(1, 2)])
    finally:
        configure_dask(None)

    assert results == (3,)


def test_configure_dask_rejects_a_non_client():
    with pytest.raises(TypeError, match="distributed.Client or None, got str"):
        configure_dask("tcp://127.0.0.1:8786")


NO_CLIENT = """
    import msgflux.nn.functional as F
    try:
        F.map_gather(abs, args_list=[(1,)], backend="dask")
    except RuntimeError as exc:
        print(exc)
"""


def test_no_client_raises_saying_how_to_get_one():
    result = run_python(NO_CLIENT, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "found no Dask client" in result.stdout
    assert "configure_dask" in result.stdout
