"""Each task runs in a copy of the caller's contextvars context."""

import asyncio
import contextvars

import msgflux.nn.functional as F

request_id = contextvars.ContextVar("request_id", default="<missing>")


def read_and_overwrite(_):
    seen = request_id.get()
    request_id.set("changed-in-task")
    return seen


async def read_async(_):
    return request_id.get()


def test_sync_tasks_see_the_callers_context_value():
    token = request_id.set("req-1")
    try:
        assert F.map_gather(read_and_overwrite, args_list=[(i,) for i in range(8)]) == (
            "req-1",
        ) * 8
    finally:
        request_id.reset(token)


def test_task_writes_do_not_leak_back_to_the_caller():
    token = request_id.set("req-2")
    try:
        F.map_gather(read_and_overwrite, args_list=[(0,), (1,)])
        assert request_id.get() == "req-2"
    finally:
        request_id.reset(token)


def test_task_writes_do_not_leak_into_sibling_tasks(pool_limit):
    pool_limit(1)  # one worker runs every task, one after another
    token = request_id.set("req-3")
    try:
        seen = F.map_gather(read_and_overwrite, args_list=[(i,) for i in range(20)])
    finally:
        request_id.reset(token)

    assert set(seen) == {"req-3"}


def test_async_tasks_in_sync_gathers_see_the_callers_context():
    token = request_id.set("req-4")
    try:
        assert F.map_gather(read_async, args_list=[(0,), (1,)]) == ("req-4", "req-4")
        assert F.wait_for(read_async, 0) == "req-4"
    finally:
        request_id.reset(token)


def test_async_gathers_copy_the_awaiting_tasks_context():
    async def main():
        request_id.set("req-5")
        return await F.amap_gather(read_async, args_list=[(0,), (1,)])

    assert asyncio.run(main()) == ("req-5", "req-5")
