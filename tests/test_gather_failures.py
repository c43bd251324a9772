"""A task's failure lands in its own slot as a TaskError."""

import logging
import sys
import traceback

import msgflux.nn.functional as F
from msgflux import TaskError


class QuotaError(Exception):
    def __init__(self, user, used, limit):
        super().__init__(f"{user}: {used}/{limit}")
        self.user, self.used, self.limit = user, used, limit


def fail_on_one(i):
    if i == 1:
        raise ValueError(f"bad {i}")
    return i


def test_failed_task_holds_task_error_and_others_keep_values():
    results = F.map_gather(fail_on_one, args_list=[(0,), (1,), (2,)])

    assert results[0] == 0
    assert results[2] == 2
    assert isinstance(results[1], TaskError)
    assert results[1].index == 1
    assert isinstance(results[1].exception, ValueError)


def test_task_error_holds_the_very_exception_raised():
    raised = []

    def charge(i):
        raised.append(QuotaError("u", 11, 10))
        raise raised[-1]

    (error,) = F.map_gather(charge, args_list=[(0,)])

    assert error.exception is raised[0]
    assert error.exception.limit == 10


def test_task_error_traceback_reaches_the_raising_frame():
    def raising_frame(i):
        raise KeyError(i)

    (error,) = F.map_gather(raising_frame, args_list=[(0,)])

    names = [frame.name for frame in traceback.extract_tb(error.exception.__traceback__)]
    assert "raising_frame" in names


def test_system_exit_in_a_task_becomes_its_task_error():
    def leave(i):
        sys.exit(3)

    (error,) = F.map_gather(leave, args_list=[(0,)])

    assert isinstance(error.exception, SystemExit)
    assert error.exception.code == 3


def test_custom_base_exception_in_a_task_becomes_its_task_error():
    class Abort(BaseException):
        pass

    def abort():
        raise Abort("stop")

    results = F.bcast_gather([abort, lambda: "fine"])

    assert isinstance(results[0].exception, Abort)
    assert results[1] == "fine"


def test_pool_keeps_working_after_many_base_exceptions():
    for _ in range(20):
        F.map_gather(lambda i: sys.exit(i), args_list=[(i,) for i in range(8)])

    assert F.map_gather(lambda i: i + 1, args_list=[(i,) for i in range(64)]) == tuple(
        range(1, 65)
    )


def test_failures_are_logged_at_debug_and_not_above(caplog):
    caplog.set_level(logging.DEBUG, logger="msgflux")

    F.map_gather(fail_on_one, args_list=[(0,), (1,)])

    failures = [r for r in caplog.records if "bad 1" in r.getMessage()]
    assert failures
    assert all(r.levelno == logging.DEBUG for r in failures)
    assert all(r.name.startswith("msgflux") for r in failures)


def test_rust_panic_inside_a_task_becomes_a_task_error():
    from msgflux import _core

    (error,) = F.map_gather(_core._panic, args_list=[("core exploded",)])

    assert "core exploded" in str(error.exception)
    assert F.map_gather(abs, args_list=[(-2,)]) == (2,)
