"""dotdict: concurrent writes to different paths are never lost."""

import sys
import threading

import pytest

from msgflux import dotdict

THREADS = 8
WRITES_PER_THREAD = 30
ROUNDS = 60


@pytest.fixture
def tiny_switch_interval():
    # Switch threads as often as CPython allows, so that races show up.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _run_threads(target):
    start = threading.Barrier(THREADS)
    errors = []

    def run(index):
        try:
            start.wait(10)
            target(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def test_set_on_sibling_paths_keeps_every_leaf(tiny_switch_interval):
    # Every thread creates the same missing parents ("shared", "gN") while
    # writing its own leaves, which is where a check-then-create would race.
    lost = 0
    for _ in range(ROUNDS):
        d = dotdict()

        def write(index, d=d):
            for j in range(WRITES_PER_THREAD):
                d.set(f"shared.g{j % 3}.t{index}_{j}", j)

        _run_threads(write)
        lost += THREADS * WRITES_PER_THREAD - sum(len(group) for group in d.shared.values())

    assert lost == 0


def test_set_on_deep_fresh_paths_keeps_every_leaf(tiny_switch_interval):
    lost = 0
    for _ in range(ROUNDS):
        d = dotdict()

        def write(index, d=d):
            for j in range(WRITES_PER_THREAD):
                d.set(f"a.b{j % 2}.c.d{j % 4}.t{index}_{j}", j)

        _run_threads(write)
        leaves = sum(
            len(level_d)
            for level_b in d.a.values()
            for level_d in level_b.c.values()
        )
        lost += THREADS * WRITES_PER_THREAD - leaves

    assert lost == 0


def test_update_merging_sibling_keys_keeps_every_key(tiny_switch_interval):
    lost = 0
    for _ in range(ROUNDS):
        d = dotdict()

        def merge(index, d=d):
            for j in range(WRITES_PER_THREAD):
                d.update({"meta": {f"g{j % 3}": {f"t{index}_{j}": j}}})

        _run_threads(merge)
        lost += THREADS * WRITES_PER_THREAD - sum(len(group) for group in d.meta.values())

    assert lost == 0


def test_attribute_writes_from_threads_keep_every_key(tiny_switch_interval):
    d = dotdict()

    def write(index):
        for j in range(WRITES_PER_THREAD):
            setattr(d, f"t{index}_{j}", j)

    _run_threads(write)

    assert len(d) == THREADS * WRITES_PER_THREAD
