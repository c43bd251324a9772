"""The pool and the background loop rebuild themselves in a forked child."""

from conftest import run_python

FORK_AFTER_USE = """
    import asyncio, os, sys
    import msgflux.nn.functional as F

    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    # Start the pool and the background loop in the parent.
    assert F.map_gather(abs, args_list=[(-1,), (-2,)]) == (1, 2)
    assert F.wait_for(double, 4) == 8

    pid = os.fork()
    if pid == 0:
        ok = (
            F.map_gather(abs, args_list=[(-3,)]) == (3,)
            and F.wait_for(double, 5) == 10
            and asyncio.run(F.amap_gather(double, args_list=[(6,)])) == (12,)
        )
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    print("parent", F.map_gather(abs, args_list=[(-7,)]) == (7,), F.wait_for(double, 1) == 2)
"""

MULTIPROCESSING_FORK = """
    import multiprocessing as mp
    import msgflux.nn.functional as F

    def work(x):
        return sum(F.map_gather(abs, args_list=[(-x,), (-x,)]))

    if __name__ == "__main__":
        F.map_gather(abs, args_list=[(1,)])
        with mp.get_context("fork").Pool(2) as pool:
            print(pool.map(work, [1, 2, 3], chunksize=1))
"""


def test_gathers_work_in_a_child_forked_after_the_pool_started():
    result = run_python(FORK_AFTER_USE, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "child 0" in result.stdout
    assert "parent True True" in result.stdout


def test_gathers_work_in_multiprocessing_fork_workers():
    result = run_python(MULTIPROCESSING_FORK, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[2, 4, 6]"


FORK_WHILE_BUSY = """
    import asyncio, os, threading
    import msgflux.nn.functional as F

    async def triple(x):
        await asyncio.sleep(0)
        return 3 * x

    stop = threading.Event()

    def hammer():
        # Keeps pool and loop locks busy in the parent while it forks.
        while not stop.is_set():
            F.map_gather(abs, args_list=[(-i,) for i in range(50)])
            F.map_gather(triple, args_list=[(1,), (2,)])

    thread = threading.Thread(target=hammer)
    thread.start()
    statuses = []
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            ok = F.map_gather(triple, args_list=[(i,) for i in range(3)], timeout=5) == (0, 3, 6)
            ok = ok and F.map_gather(abs, args_list=[(-2,)], timeout=5) == (2,)
            os._exit(0 if ok else 1)
        statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    stop.set()
    thread.join()
    print(statuses)
"""


def test_children_forked_while_the_pool_is_busy_never_hang():
    result = run_python(FORK_WHILE_BUSY, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([0] * 20)
