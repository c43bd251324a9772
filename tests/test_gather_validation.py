"""Bad arguments raise at once, before any task starts."""

import math

import pytest

import msgflux.nn.functional as F

calls = []


def record(*args, **kwargs):
    calls.append(args)
    return args


@pytest.fixture(autouse=True)
def no_calls():
    calls.clear()
    yield
    assert calls == [], "a task ran although the arguments were rejected"


def test_non_callable_f_raises_type_error():
    with pytest.raises(TypeError, match="f must be callable, got int 3"):
        F.map_gather(3, args_list=[(1,)])


def test_non_tuple_args_items_raise_type_error_naming_the_item():
    with pytest.raises(TypeError, match=r"args_list\[1\] must be a tuple or list.*got int 2"):
        F.map_gather(record, args_list=[(1,), 2])


def test_bare_values_as_args_list_suggest_wrapping_in_tuples():
    with pytest.raises(TypeError, match=r"\(x,\) for x in items"):
        F.map_gather(record, args_list=[1, 2])


def test_string_as_args_list_raises_type_error():
    with pytest.raises(TypeError, match="args_list must be a list of argument tuples"):
        F.map_gather(record, args_list="ab")


def test_non_iterable_args_list_raises_type_error():
    with pytest.raises(TypeError, match="args_list must be an iterable"):
        F.map_gather(record, args_list=5)


def test_kwargs_list_of_another_length_raises_value_error():
    with pytest.raises(ValueError, match="kwargs_list has 1 items but args_list has 2"):
        F.map_gather(record, args_list=[(1,), (2,)], kwargs_list=[{}])


def test_non_dict_kwargs_item_raises_type_error():
    with pytest.raises(TypeError, match=r"kwargs_list\[0\] must be a dict"):
        F.map_gather(record, args_list=[(1,)], kwargs_list=[("x", 1)])


def test_scatter_args_list_longer_than_callables_raises_value_error():
    with pytest.raises(ValueError, match="args_list has 3 items but there are only 2 callables"):
        F.scatter_gather([record, record], args_list=[(1,), (2,), (3,)])


def test_scatter_kwargs_list_longer_than_callables_raises_value_error():
    with pytest.raises(ValueError, match="kwargs_list has 2 items but there are only 1"):
        F.scatter_gather([record], kwargs_list=[{}, {}])


def test_non_callable_in_callables_raises_type_error_naming_the_index():
    with pytest.raises(TypeError, match=r"fs\[1\] must be callable, got str 'x'"):
        F.bcast_gather([record, "x"], 1)


def test_single_callable_instead_of_a_list_raises_type_error():
    with pytest.raises(TypeError, match="fs must be an iterable of callables"):
        F.bcast_gather(record, 1)


@pytest.mark.parametrize("timeout", [0, -1, math.nan, -math.inf])
def test_non_positive_or_nan_timeout_raises_value_error(timeout):
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        F.map_gather(record, args_list=[(1,)], timeout=timeout)


@pytest.mark.parametrize("timeout", ["1", True, [1], object()])
def test_non_number_timeout_raises_type_error(timeout):
    with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
        F.bcast_gather([record], timeout=timeout)


def test_wait_for_checks_its_callable_and_timeout():
    with pytest.raises(TypeError, match="f must be callable"):
        F.wait_for(None)
    with pytest.raises(ValueError, match="timeout must be a positive"):
        F.wait_for(record, timeout=0)


def test_spawn_rejects_a_non_callable():
    with pytest.raises(TypeError, match="f must be callable"):
        F.spawn(42)


def test_module_list_is_accepted_as_callables():
    import msgflux.nn as nn

    class Double(nn.Module):
        def forward(self, x):
            return 2 * x

    assert F.scatter_gather(nn.ModuleList([Double(), Double()]), [(1,), (2,)]) == (2, 4)


def test_module_dict_contributes_its_modules():
    import msgflux.nn as nn

    class Tag(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def forward(self, x):
            return f"{self.tag}{x}"

    modules = nn.ModuleDict({"a": Tag("a"), "b": Tag("b")})

    assert F.bcast_gather(modules, 1) == ("a1", "b1")


def test_error_message_shows_a_one_line_repr():
    with pytest.raises(TypeError) as info:
        F.bcast_gather([record, "multi\nline"], 1)

    assert "\n" not in str(info.value)


def test_coroutine_object_instead_of_function_gets_a_hint():
    async def fetch(x):
        return x

    coroutine = fetch(1)
    try:
        with pytest.raises(TypeError, match="pass the async function itself, without calling it"):
            F.map_gather(coroutine, args_list=[(1,)])
    finally:
        coroutine.close()
