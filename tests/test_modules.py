"""nn.Module, nn.ModuleList and nn.ModuleDict: calling, children and gathers."""

import asyncio
import contextvars
import copy
import threading

import pytest

import msgflux.nn as nn
import msgflux.nn.functional as F
from msgflux import TaskError

request_id = contextvars.ContextVar("request_id", default=None)


class Double(nn.Module):
    def forward(self, x):
        return 2 * x


class AsyncOnly(nn.Module):
    async def aforward(self, x):
        await asyncio.sleep(0)
        return x + 100


class Both(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append("forward")
        return x

    async def aforward(self, x):
        self.calls.append("aforward")
        return x


class Failing(nn.Module):
    async def aforward(self):
        raise LookupError("bad input")


class Pipeline(nn.Module):
    def __init__(self):
        super().__init__(name="pipe")
        self.first = Double()
        self.second = Double()

    def forward(self, x):
        return self.second(self.first(x))


class NoSuperInit(nn.Module):
    def __init__(self):
        self.child = Double()


# Calling


def test_call_runs_forward():
    assert Double()(3) == 6


def test_acall_runs_aforward_when_defined(run_async):
    module = Both()

    assert run_async(module.acall(1)) == 1
    assert module.calls == ["aforward"]


def test_acall_runs_forward_in_worker_thread(run_async):
    loop_thread = []
    forward_thread = []

    class Record(nn.Module):
        def forward(self):
            forward_thread.append(threading.get_ident())

    async def main():
        loop_thread.append(threading.get_ident())
        await Record().acall()

    run_async(main())

    assert forward_thread[0] != loop_thread[0]


def test_acall_of_sync_module_does_not_block_loop(run_async):
    # forward waits for an event that only the loop can set, so a blocked
    # loop would make the wait time out.
    loop_ran = threading.Event()

    class WaitForLoop(nn.Module):
        def forward(self):
            return loop_ran.wait(10)

    async def main():
        call = asyncio.ensure_future(WaitForLoop().acall())
        await asyncio.sleep(0)
        loop_ran.set()
        return await call

    assert run_async(main()) is True


def test_acall_of_sync_module_sees_caller_context(run_async):
    class ReadContext(nn.Module):
        def forward(self):
            return request_id.get()

    async def main():
        request_id.set("req-7")
        return await ReadContext().acall()

    assert run_async(main()) == "req-7"


def test_call_of_async_only_module_runs_aforward():
    assert AsyncOnly()(1) == 101


def test_call_of_async_only_module_inside_running_loop(run_async):
    async def main():
        return AsyncOnly()(2)

    assert run_async(main()) == 102


def test_call_of_async_only_module_raises_its_exception():
    with pytest.raises(LookupError, match="bad input"):
        Failing()()


def test_module_without_forward_raises_not_implemented():
    with pytest.raises(NotImplementedError, match="Module defines neither forward\\(\\) nor aforward\\(\\)"):
        nn.Module()()


def test_acall_of_module_without_forward_raises_not_implemented(run_async):
    with pytest.raises(NotImplementedError, match="defines neither forward"):
        run_async(nn.Module().acall())


# Names and repr


def test_name_defaults_to_class_name():
    assert Double().name == "Double"


def test_name_can_be_set():
    assert Double(name="doubler").name == "doubler"


def test_empty_name_raises_type_error():
    with pytest.raises(TypeError, match="name must be a non-empty string, got str ''"):
        Double(name="")


def test_repr_shows_children_tree():
    assert repr(Pipeline()) == (
        "Pipeline(\n"
        "  name='pipe'\n"
        "  (first): Double()\n"
        "  (second): Double()\n"
        ")"
    )


# Children


def test_module_attribute_becomes_child():
    pipeline = Pipeline()

    assert [name for name, _ in pipeline.named_children()] == ["first", "second"]
    assert pipeline.first(1) == 2


def test_named_modules_lists_descendants_once():
    outer = nn.Module()
    shared = Double()
    outer.inner = Pipeline()
    outer.inner.third = shared
    outer.again = shared

    names = [name for name, _ in outer.named_modules()]

    assert names == ["", "inner", "inner.first", "inner.second", "inner.third"]


def test_replacing_child_with_plain_value_removes_child():
    pipeline = Pipeline()

    pipeline.first = 5

    assert pipeline.first == 5
    assert [name for name, _ in pipeline.named_children()] == ["second"]


def test_deleting_child_removes_it():
    pipeline = Pipeline()

    del pipeline.first

    assert not hasattr(pipeline, "first")


def test_child_registration_works_without_super_init():
    module = NoSuperInit()

    assert list(module.children()) == [module.child]


def test_missing_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="'Double' object has no attribute 'nope'"):
        Double().nope


def test_deepcopy_copies_children():
    pipeline = Pipeline()

    clone = copy.deepcopy(pipeline)

    assert clone.first is not pipeline.first
    assert clone(1) == 4


# ModuleList


def test_module_list_indexes_like_list():
    first, second, third = Double(), Double(), Double()
    modules = nn.ModuleList([first, second])

    modules.append(third)

    assert len(modules) == 3
    assert modules[0] is first
    assert modules[-1] is third
    assert list(modules) == [first, second, third]
    assert second in modules


def test_module_list_slice_is_module_list():
    modules = nn.ModuleList([Double(), Double(), Double()])

    part = modules[1:]

    assert isinstance(part, nn.ModuleList)
    assert len(part) == 2


def test_module_list_insert_and_delete_keep_names_dense():
    first, second, third = Double(), Double(), Double()
    modules = nn.ModuleList([first, third])

    modules.insert(1, second)
    del modules[0]

    assert [name for name, _ in modules.named_children()] == ["0", "1"]
    assert list(modules) == [second, third]


def test_module_list_setitem_replaces():
    replacement = Double()
    modules = nn.ModuleList([Double()])

    modules[0] = replacement

    assert modules[0] is replacement


def test_module_list_add_and_iadd():
    first, second = Double(), Double()
    modules = nn.ModuleList([first])

    combined = modules + [second]
    modules += [second]

    assert list(combined) == [first, second]
    assert list(modules) == [first, second]


def test_module_list_rejects_non_module():
    with pytest.raises(TypeError, match="ModuleList item 0 must be an nn.Module, got builtin_function_or_method"):
        nn.ModuleList([len])


def test_module_list_extend_rejects_single_module():
    with pytest.raises(TypeError, match="use append\\(\\) to add one module"):
        nn.ModuleList().extend(Double())


def test_module_list_in_parent_is_named_child():
    parent = nn.Module()
    parent.steps = nn.ModuleList([Double()])

    names = [name for name, _ in parent.named_modules()]

    assert names == ["", "steps", "steps.0"]


# ModuleDict


def test_module_dict_maps_names_to_modules():
    double = Double()
    modules = nn.ModuleDict({"double": double})

    assert modules["double"] is double
    assert modules.double is double
    assert "double" in modules
    assert list(modules.keys()) == ["double"]
    assert list(modules.items()) == [("double", double)]
    assert len(modules) == 1


def test_module_dict_update_pop_and_clear():
    modules = nn.ModuleDict()

    modules.update([("a", Double()), ("b", Double())])
    removed = modules.pop("a")

    assert isinstance(removed, Double)
    assert list(modules) == ["b"]
    modules.clear()
    assert len(modules) == 0


def test_module_dict_key_named_like_method_stays_reachable():
    double = Double()
    modules = nn.ModuleDict({"forward": double})

    assert modules["forward"] is double
    assert callable(modules.forward)


def test_module_dict_rejects_non_string_key():
    with pytest.raises(TypeError, match="ModuleDict keys must be strings, got int 1"):
        nn.ModuleDict({1: Double()})


def test_module_dict_rejects_non_module():
    with pytest.raises(TypeError, match="ModuleDict\\['x'\\] must be an nn.Module"):
        nn.ModuleDict({"x": 3})


# Gathers


def test_map_gather_calls_module():
    assert F.map_gather(Double(), args_list=[(1,), (2,)]) == (2, 4)


def test_scatter_gather_over_module_list():
    modules = nn.ModuleList([Double(), AsyncOnly()])

    assert F.scatter_gather(modules, args_list=[(1,), (1,)]) == (2, 101)


def test_bcast_gather_over_module_dict_values():
    modules = nn.ModuleDict({"double": Double(), "add": AsyncOnly()})

    assert F.bcast_gather(modules.values(), 5) == (10, 105)


def test_amap_gather_uses_aforward(run_async):
    module = Both()

    results = run_async(F.amap_gather(module, args_list=[(1,), (2,)]))

    assert results == (1, 2)
    assert module.calls == ["aforward", "aforward"]


def test_amap_gather_runs_sync_module(run_async):
    assert run_async(F.amap_gather(Double(), args_list=[(1,), (2,)])) == (2, 4)


def test_module_calling_gather_in_forward():
    class FanOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.double = Double()

        def forward(self, values):
            return sum(F.map_gather(self.double, args_list=[(v,) for v in values]))

    results = F.map_gather(FanOut(), args_list=[([1, 2],), ([3],)])

    assert results == (6, 6)


def test_failing_module_gives_task_error():
    (result,) = F.scatter_gather([Failing()])

    assert not result
    assert isinstance(result.exception, LookupError)


def test_call_of_async_only_module_returns_task_error_value():
    class ReturnsTaskError(nn.Module):
        async def aforward(self):
            return TaskError(0, ValueError("a value, not a failure"))

    result = ReturnsTaskError()()

    assert isinstance(result, TaskError)
    assert str(result.exception) == "a value, not a failure"
