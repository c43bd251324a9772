"""OpenTelemetry spans for gathers and their tasks, when OpenTelemetry is installed.

Every gather opens a span named after the function (``msgflux.map_gather``)
and every task runs in a child span (``msgflux.task``). Because each task
runs in a copy of the caller's context, the gather span is the parent of its
task spans on any thread or loop, and a gather nested in a task gets that
task's span as parent. Without ``opentelemetry-api`` this costs one check per
call; with it but without a configured SDK, one non-recording span per call
and no task spans.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional, Tuple

try:
    from opentelemetry import context as _otel_context
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - exercised where the extra is absent
    _otel_trace = None

from msgflux._errors import TaskError

__all__ = ["AVAILABLE", "GatherSpan", "start"]

AVAILABLE = _otel_trace is not None

# Tests point this at their own provider; None means the global one.
tracer_provider: Any = None


def _tracer() -> Any:
    from msgflux import __version__

    return _otel_trace.get_tracer("msgflux", __version__, tracer_provider=tracer_provider)


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or type(f).__qualname__


class _TracedTask:
    __slots__ = ("f", "index", "tracer", "__wrapped__")

    def __init__(self, f: Callable, index: int, tracer: Any) -> None:
        self.f = f
        self.index = index
        self.tracer = tracer
        self.__wrapped__ = f

    def _attributes(self) -> dict:
        return {"msgflux.task.index": self.index, "code.function": _name(self.f)}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.tracer.start_as_current_span("msgflux.task", attributes=self._attributes()):
            return self.f(*args, **kwargs)


class _AsyncTracedTask(_TracedTask):
    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.tracer.start_as_current_span("msgflux.task", attributes=self._attributes()):
            return await self.f(*args, **kwargs)


def start(label: str, count: int, timeout: Optional[float], backend: str) -> Optional["GatherSpan"]:
    """Open the span of a gather, or return None when nothing records it."""
    if not AVAILABLE:
        return None
    span = GatherSpan.start(label, count, timeout)
    if span is not None:
        # NOTE: tasks on other backends run in other processes, where the
        # caller's tracer does not exist; only the gather span is recorded.
        span.trace_tasks = backend == "threads"
    return span


class GatherSpan:
    """The span of one gather, current in the caller's context while it runs.

    Used as ``with span:`` around the run; set ``results`` before leaving.
    """

    __slots__ = ("span", "token", "tracer", "trace_tasks", "results")

    def __init__(self, span: Any, token: Any, tracer: Any) -> None:
        self.span = span
        self.token = token
        self.tracer = tracer
        self.trace_tasks = True
        self.results: Optional[Tuple[Any, ...]] = None

    def __enter__(self) -> "GatherSpan":
        return self

    def __exit__(self, kind: Any, error: Optional[BaseException], traceback: Any) -> None:
        self.finish(None if error is not None else self.results, error)

    def tasks(self, callables: Any, count: int) -> Any:
        """Return the callables to run: wrapped in task spans when traced."""
        return self.wrap(callables, count) if self.trace_tasks else callables

    @classmethod
    def start(cls, label: str, count: int, timeout: Optional[float]) -> Optional["GatherSpan"]:
        """Open and enter the span, or return None when nothing records it."""
        tracer = _tracer()
        attributes = {"msgflux.task_count": count}
        if timeout is not None:
            attributes["msgflux.timeout"] = timeout
        span = tracer.start_span(f"msgflux.{label}", attributes=attributes)
        if not span.is_recording():
            span.end()
            return None
        token = _otel_context.attach(_otel_trace.set_span_in_context(span))
        return cls(span, token, tracer)

    def wrap(self, callables: Any, count: int) -> Any:
        """Give each task its own span, numbered by its index."""

        def traced(f: Callable, index: int) -> Callable:
            is_async = inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(
                getattr(f, "__call__", None)
            )
            kind = _AsyncTracedTask if is_async else _TracedTask
            return kind(f, index, self.tracer)

        if isinstance(callables, list):
            return [traced(f, i) for i, f in enumerate(callables)]
        return [traced(callables, i) for i in range(count)]

    def finish(self, results: Optional[Tuple[Any, ...]], error: Optional[BaseException]) -> None:
        """Record the outcome, end the span and leave its context."""
        span = self.span
        try:
            if results is not None:
                failures = [r for r in results if type(r) is TaskError]
                timeouts = sum(isinstance(r.exception, TimeoutError) for r in failures)
                span.set_attribute("msgflux.failures", len(failures) - timeouts)
                span.set_attribute("msgflux.timeouts", timeouts)
            if error is not None:
                span.record_exception(error)
                span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, repr(error)))
        finally:
            span.end()
            _otel_context.detach(self.token)
