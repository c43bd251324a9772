"""Gathers called from inside tasks never deadlock."""

import threading

import pytest

import msgflux.nn.functional as F


def nest(depth, width):
    if depth == 0:
        return 1
    return sum(F.map_gather(nest, args_list=[(depth - 1, width)] * width))


@pytest.mark.parametrize("workers", [1, 2])
def test_nested_gathers_of_depth_4_finish_with_a_capped_pool(pool_limit, workers):
    pool_limit(workers)

    assert nest(4, 3) == 3**4


def test_three_level_fanout_above_pool_size_gives_exact_results(pool_limit):
    pool_limit(2)

    def leaf(x):
        return x + 1

    def middle(x):
        return sum(F.map_gather(leaf, args_list=[(x,)] * 8))

    def top(x):
        return sum(F.map_gather(middle, args_list=[(x,)] * 8))

    results = F.map_gather(top, args_list=[(i,) for i in range(32)])

    assert results == tuple(64 * (i + 1) for i in range(32))


def test_nested_gathers_with_timeouts_finish_with_a_capped_pool(pool_limit):
    pool_limit(1)

    def inner(x):
        return x * 2

    def outer(x):
        return F.map_gather(inner, args_list=[(x,), (x + 1,)], timeout=10)

    results = F.map_gather(outer, args_list=[(0,), (5,)], timeout=20)

    assert results == ((0, 2), (10, 12))


def test_nested_blocking_tasks_still_run_concurrently():
    # Every inner task waits at one barrier, which only opens once all 16 run
    # at the same time.
    barrier = threading.Barrier(16, timeout=10)

    def inner():
        barrier.wait()
        return True

    def outer():
        return all(F.bcast_gather([inner] * 4))

    assert F.bcast_gather([outer] * 4) == (True,) * 4
