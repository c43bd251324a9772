"""OpenTelemetry spans for gathers and tasks."""

import asyncio
import threading

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import msgflux._tracing as tracing
import msgflux.nn.functional as F


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.tracer_provider = provider
    yield exporter
    tracing.tracer_provider = None
    provider.shutdown()


def by_name(exporter, name):
    return [span for span in exporter.get_finished_spans() if span.name == name]


def test_gather_opens_a_span_with_counts(spans):
    def broken():
        raise ValueError("no")

    F.bcast_gather([broken, abs], -1)

    (gather,) = by_name(spans, "msgflux.bcast_gather")
    assert gather.attributes["msgflux.task_count"] == 2
    assert gather.attributes["msgflux.failures"] == 1
    assert gather.attributes["msgflux.timeouts"] == 0


def test_timeouts_are_counted_on_the_gather_span(spans, gate):
    F.map_gather(gate.wait, args_list=[(10,), (0,)], timeout=0.1)

    (gather,) = by_name(spans, "msgflux.map_gather")
    assert gather.attributes["msgflux.timeouts"] == 1
    assert gather.attributes["msgflux.timeout"] == 0.1


def test_each_task_runs_in_a_child_span_with_index_and_name(spans):
    def double(x):
        return 2 * x

    F.map_gather(double, args_list=[(1,), (2,)])

    (gather,) = by_name(spans, "msgflux.map_gather")
    tasks = by_name(spans, "msgflux.task")
    assert sorted(t.attributes["msgflux.task.index"] for t in tasks) == [0, 1]
    assert {t.attributes["code.function"] for t in tasks} == {
        "test_each_task_runs_in_a_child_span_with_index_and_name.<locals>.double"
    }
    assert all(t.parent.span_id == gather.context.span_id for t in tasks)


def test_failed_task_span_records_the_exception(spans):
    def broken():
        raise KeyError("missing")

    F.bcast_gather([broken])

    (task,) = by_name(spans, "msgflux.task")
    assert task.status.status_code is StatusCode.ERROR
    assert [event.name for event in task.events] == ["exception"]


def test_nested_gather_span_is_a_child_of_the_task_span(spans):
    def inner(x):
        return x

    def outer(x):
        return F.map_gather(inner, args_list=[(x,)])

    F.map_gather(outer, args_list=[(1,)])

    outer_task = next(t for t in by_name(spans, "msgflux.task") if t.attributes["code.function"].endswith("outer"))
    inner_gather = next(g for g in by_name(spans, "msgflux.map_gather") if g.parent is not None)
    assert inner_gather.parent.span_id == outer_task.context.span_id


def test_async_gather_and_coroutine_tasks_are_traced(spans):
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    asyncio.run(F.amap_gather(double, args_list=[(1,), (2,)]))

    (gather,) = by_name(spans, "msgflux.amap_gather")
    tasks = by_name(spans, "msgflux.task")
    assert len(tasks) == 2
    assert all(t.parent.span_id == gather.context.span_id for t in tasks)


def test_coroutines_in_sync_gathers_keep_their_parent(spans):
    async def double(x):
        return 2 * x

    F.map_gather(double, args_list=[(1,)])

    (gather,) = by_name(spans, "msgflux.map_gather")
    (task,) = by_name(spans, "msgflux.task")
    assert task.parent.span_id == gather.context.span_id


def test_without_a_recording_provider_no_task_spans_are_made():
    assert tracing.tracer_provider is None  # the global no-op provider

    calls = []
    F.map_gather(lambda: calls.append(threading.get_ident()), args_list=[()])

    assert len(calls) == 1


def test_gathers_on_the_processes_backend_work_while_traced(spans):
    assert F.map_gather(abs, args_list=[(-1,), (-2,)], backend="processes") == (1, 2)

    (gather,) = by_name(spans, "msgflux.map_gather")
    assert gather.attributes["msgflux.task_count"] == 2
    assert by_name(spans, "msgflux.task") == []
