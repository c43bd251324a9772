"""Result order, shape and identity of the sync gathers."""

import threading

import msgflux.nn.functional as F


def test_map_gather_keeps_input_order_when_later_tasks_finish_first():
    # Task i waits for task i + 1 to finish, so tasks finish in reverse order.
    done = [threading.Event() for _ in range(6)]
    done.append(threading.Event())
    done[-1].set()

    def step(i):
        assert done[i + 1].wait(10)
        done[i].set()
        return i

    results = F.map_gather(step, args_list=[(i,) for i in range(6)])

    assert results == (0, 1, 2, 3, 4, 5)


def test_gathers_return_tuples():
    assert type(F.map_gather(abs, args_list=[(-1,)])) is tuple
    assert type(F.scatter_gather([abs], [(-1,)])) is tuple
    assert type(F.bcast_gather([abs], -1)) is tuple


def test_empty_batches_return_empty_tuples():
    assert F.map_gather(abs, args_list=[]) == ()
    assert F.scatter_gather([]) == ()
    assert F.bcast_gather([], 1) == ()


def test_map_gather_accepts_any_iterable_of_argument_tuples():
    results = F.map_gather(pow, args_list=((b, 2) for b in range(4)))

    assert results == (0, 1, 4, 9)


def test_map_gather_accepts_lists_as_argument_items():
    assert F.map_gather(pow, args_list=[[2, 3], [3, 2]]) == (8, 9)


def test_map_gather_pairs_kwargs_with_args():
    def scale(x, factor=1):
        return x * factor

    results = F.map_gather(
        scale, args_list=[(1,), (2,), (3,)], kwargs_list=[{"factor": 10}, {}, None]
    )

    assert results == (10, 2, 3)


def test_scatter_gather_gives_each_callable_its_own_input():
    results = F.scatter_gather([str.upper, str.lower], args_list=[("a",), ("B",)])

    assert results == ("A", "b")


def test_scatter_gather_with_only_kwargs_list():
    def greet(name="World"):
        return f"Hello, {name}"

    results = F.scatter_gather([greet, greet], kwargs_list=[{}, {"name": "Earth"}])

    assert results == ("Hello, World", "Hello, Earth")


def test_scatter_gather_calls_callables_without_entries_with_no_arguments():
    results = F.scatter_gather([lambda x: x, lambda: "none"], args_list=[(5,)])

    assert results == (5, "none")


def test_bcast_gather_passes_the_same_arguments_to_every_callable():
    seen = []

    def record(item, *, tag):
        seen.append(item)
        return tag

    results = F.bcast_gather([record, record], ["shared"], tag="t")

    assert results == ("t", "t")
    assert seen[0] is seen[1]


def test_map_gather_of_100000_tasks_returns_every_result_in_order():
    results = F.map_gather(lambda i: i * 3, args_list=[(i,) for i in range(100_000)])

    assert results == tuple(i * 3 for i in range(100_000))


def test_results_are_the_returned_objects_not_copies():
    objects = [object() for _ in range(16)]

    results = F.map_gather(lambda i: objects[i], args_list=[(i,) for i in range(16)])

    assert all(result is obj for result, obj in zip(results, objects))


def test_callable_objects_and_bound_methods_run_as_tasks():
    class Doubler:
        def __call__(self, x):
            return 2 * x

    results = F.bcast_gather([Doubler(), "ab".__mul__], 2)

    assert results == (4, "abab")


def test_user_list_passed_as_args_list_is_not_modified():
    args = [[1], [2]]

    F.map_gather(abs, args_list=args)

    assert args == [[1], [2]]
