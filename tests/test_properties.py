"""Property tests: random mixes of task outcomes keep the gather contract."""

import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msgflux.nn.functional as F
from msgflux import TaskError, dotdict

# Each task either returns, raises, sleeps briefly, or overruns the deadline.
OUTCOMES = st.sampled_from(["return", "raise", "sleep", "overrun"])
DEADLINE = 0.15


class Boom(Exception):
    pass


def make_task(release, starts):
    def task(i, outcome):
        starts.append((i, time.monotonic()))
        if outcome == "raise":
            raise Boom(i)
        if outcome == "sleep":
            time.sleep(0.001)
        if outcome == "overrun":
            release.wait(5)
        return i * 10

    return task


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OUTCOMES, min_size=0, max_size=40))
def test_every_slot_holds_its_value_or_its_task_error(outcomes):
    release = threading.Event()
    starts = []
    task = make_task(release, starts)
    has_overrun = "overrun" in outcomes
    timeout = DEADLINE if has_overrun else None

    started = time.monotonic()
    try:
        results = F.map_gather(task, args_list=list(enumerate(outcomes)), timeout=timeout)
    finally:
        release.set()
    deadline = started + DEADLINE

    assert len(results) == len(outcomes)
    for i, (outcome, result) in enumerate(zip(outcomes, results)):
        if outcome == "raise":
            assert isinstance(result, TaskError) and result.index == i
            assert isinstance(result.exception, Boom) and result.exception.args == (i,)
        elif outcome == "overrun":
            assert isinstance(result, TaskError) and result.index == i
            assert isinstance(result.exception, TimeoutError)
        elif isinstance(result, TaskError):
            # A short task may still time out if it never got to start.
            assert isinstance(result.exception, TimeoutError)
        else:
            assert result == i * 10
    if has_overrun:
        assert all(when <= deadline + 0.01 for _, when in starts)


PATHS = st.lists(
    st.text(alphabet="abcdefgh", min_size=1, max_size=4), min_size=1, max_size=4
).map(".".join)
VALUES = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.booleans())


@settings(max_examples=100, deadline=None)
@given(PATHS, VALUES)
def test_dotdict_get_after_set_returns_the_value(path, value):
    message = dotdict()

    message.set(path, value)

    assert message.get(path) == value


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(alphabet="xyz", min_size=1, max_size=3),
                       st.one_of(VALUES, st.dictionaries(st.sampled_from("pq"), VALUES)),
                       max_size=6))
def test_dotdict_to_dict_round_trips(data):
    assert dotdict(data).to_dict() == data
