"""Fire-and-forget from async code."""

import asyncio
import gc
import logging
import threading
import weakref

import msgflux.nn.functional as F


def test_aspawned_coroutine_completes_across_garbage_collection(run_async):
    async def main():
        done = []

        async def job(tag):
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            ref = weakref.ref(future)
            loop.call_later(0.1, lambda: (f := ref()) is not None and f.set_result(tag))
            done.append(await future)

        await F.aspawn(job, "a")
        for _ in range(5):
            gc.collect()
            await asyncio.sleep(0.01)
        for _ in range(100):
            if done:
                break
            await asyncio.sleep(0.01)
        return done

    assert run_async(main()) == ["a"]


def test_aspawn_returns_before_the_task_finishes(run_async):
    async def main():
        release = asyncio.Event()
        finished = asyncio.Event()

        async def job():
            await release.wait()
            finished.set()

        await F.aspawn(job)
        assert not finished.is_set()
        release.set()
        await asyncio.wait_for(finished.wait(), 5)
        return True

    assert run_async(main())


def test_aspawn_runs_sync_callables_off_the_loop(run_async):
    async def main():
        seen = threading.Event()
        holder = {}

        def job():
            holder["thread"] = threading.get_ident()
            seen.set()

        await F.aspawn(job)
        assert await F.await_for_event(seen, timeout=5)
        return holder["thread"] != threading.get_ident()

    assert run_async(main())


def test_aspawned_failure_is_logged_at_error(run_async, caplog):
    async def main():
        async def boom():
            raise ValueError("aspawn-boom")

        await F.aspawn(boom)
        for _ in range(100):
            if any(r.levelno >= logging.ERROR for r in caplog.records):
                break
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, logger="msgflux"):
        run_async(main())

    messages = [r.exc_info[1].args for r in caplog.records if r.levelno >= logging.ERROR]
    assert messages == [("aspawn-boom",)]
