"""nn.Agent against the local test server, alone and inside every gather."""

import asyncio
import logging
import threading

import pytest

import msgflux as mf
import msgflux.nn as nn
import msgflux.nn.functional as F
from msgflux import TaskError
from msgflux.models import _http

from chat_server import chat_server, openai_env  # noqa: F401 - pytest fixtures

MANY = 200


class Echo(nn.Agent):
    model = mf.Model.chat_completion("openai/gpt-test")
    instructions = "be brief"


class Upper(nn.Agent):
    model = mf.Model.chat_completion("openai/gpt-test")
    instructions = "upper"


class RecordingModel:
    """A model stand-in that records which path the agent used."""

    def __init__(self):
        self.paths = []

    def __call__(self, messages, **options):
        self.paths.append("sync")
        return mf.models.ChatCompletion(messages[-1]["content"], None, None, None, {})

    async def acall(self, messages, **options):
        self.paths.append("async")
        return mf.models.ChatCompletion(messages[-1]["content"], None, None, None, {})


class SyncOnlyModel:
    def __call__(self, messages, **options):
        return mf.models.ChatCompletion(f"thread {threading.get_ident()}", None, None, None, {})


@pytest.fixture
def server(openai_env):
    openai_env.set_responder(_reply)
    return openai_env


def _reply(body):
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    text = body["messages"][-1]["content"]
    return text.upper() if system == "upper" else f"echo: {text}"


def _release_when_all_arrive(server, count):
    """Release held responses once ``count`` requests are in flight at once."""
    arrived = []

    def watch():
        try:
            arrived.append(server.wait_for_requests(count, timeout=30))
        finally:
            server.release()

    watcher = threading.Thread(target=watch)
    watcher.start()
    return watcher, arrived


# Calling an agent


def test_agent_returns_reply_text(server):
    assert Echo()("hello") == "echo: hello"


def test_agent_sends_instructions_then_text(server):
    Echo()("hello")

    assert server.requests[0].body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]


def test_agent_without_instructions_sends_only_text(server):
    class Plain(nn.Agent):
        model = Echo.model

    Plain()("hi")

    assert server.requests[0].body["messages"] == [{"role": "user", "content": "hi"}]


def test_agent_accepts_message_history(server):
    history = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]

    assert Echo()(history) == "echo: c"
    assert server.requests[0].body["messages"][1:] == history


def test_agent_passes_call_options(server):
    Echo()("hi", temperature=0.1)

    assert server.requests[0].body["temperature"] == 0.1


def test_constructor_overrides_class_attributes(server):
    agent = Echo(instructions="upper", name="shouter")

    assert agent("hi") == "HI"
    assert agent.name == "shouter"


def test_agent_without_model_raises_type_error():
    with pytest.raises(TypeError, match=(
        r"Agent.model must be a chat model, got NoneType; set the class attribute "
        r"model = mf.Model.chat_completion\('openai/...'\) or pass model= to Agent\(\)"
    )):
        nn.Agent()("hi")


def test_agent_rejects_non_text_message(server):
    with pytest.raises(TypeError, match="Echo expects a string or a list of message dicts, got int"):
        Echo()(42)


def test_agent_rejects_history_item_without_role(server):
    with pytest.raises(TypeError, match="item 0 is dict, not a dict with a 'role' key"):
        Echo()([{"content": "x"}])


def test_agent_rejects_non_string_instructions(server):
    with pytest.raises(TypeError, match="Echo.instructions must be a string or None, got int"):
        Echo(instructions=5)("hi")


def test_agent_repr_names_model():
    assert repr(Echo()) == "Echo(model=ChatCompletionModel('openai/gpt-test'))"


def test_agent_logs_reply_at_debug(server, caplog):
    with caplog.at_level(logging.DEBUG, logger="msgflux.nn.agent"):
        Echo(name="echoer")("hi")

    assert "agent echoer got a reply in" in caplog.text


def test_agent_call_raises_model_error(server, monkeypatch):
    server.require_api_key("other")

    with pytest.raises(mf.models.ModelHTTPError, match="HTTP 401"):
        Echo()("hi")


# Async path


def test_acall_returns_reply_text(server, run_async):
    assert run_async(Echo().acall("hello")) == "echo: hello"


def test_acall_uses_model_async_path(run_async):
    model = RecordingModel()

    assert run_async(nn.Agent(model=model).acall("x")) == "x"
    assert model.paths == ["async"]


def test_call_uses_model_sync_path():
    model = RecordingModel()

    assert nn.Agent(model=model)("x") == "x"
    assert model.paths == ["sync"]


def test_acall_runs_sync_only_model_in_thread(run_async):
    async def main():
        reply = await nn.Agent(model=SyncOnlyModel()).acall("x")
        return reply, threading.get_ident()

    reply, loop_thread = run_async(main())

    assert reply != f"thread {loop_thread}"


# Gathers


def test_map_gather_runs_agent(server):
    results = F.map_gather(Echo(), args_list=[("a",), ("b",)])

    assert results == ("echo: a", "echo: b")


def test_scatter_gather_runs_agents(server):
    results = F.scatter_gather([Echo(), Upper()], args_list=[("a",), ("b",)])

    assert results == ("echo: a", "B")


def test_bcast_gather_runs_agents(server):
    assert F.bcast_gather([Echo(), Upper()], "x") == ("echo: x", "X")


def test_wait_for_runs_agent(server):
    assert F.wait_for(Echo(), "x") == "echo: x"


def test_amap_gather_runs_agent(server, run_async):
    results = run_async(F.amap_gather(Echo(), args_list=[("a",), ("b",)]))

    assert results == ("echo: a", "echo: b")


def test_ascatter_gather_runs_agents(server, run_async):
    results = run_async(F.ascatter_gather([Echo(), Upper()], args_list=[("a",), ("b",)]))

    assert results == ("echo: a", "B")


def test_abcast_gather_runs_agents(server, run_async):
    assert run_async(F.abcast_gather([Echo(), Upper()], "x")) == ("echo: x", "X")


def test_async_gathers_use_agent_async_path(run_async):
    model = RecordingModel()
    agent = nn.Agent(model=model)

    run_async(F.amap_gather(agent, args_list=[("a",), ("b",)]))
    run_async(F.abcast_gather([agent], "c"))

    assert model.paths == ["async", "async", "async"]


def test_bad_input_fails_only_its_slot(server):
    results = F.map_gather(Echo(), args_list=[("ok",), (42,), ("fine",)])

    assert results[0] == "echo: ok"
    assert isinstance(results[1], TaskError)
    assert isinstance(results[1].exception, TypeError)
    assert results[2] == "echo: fine"


def test_rate_limited_agents_in_gather_all_succeed(server, monkeypatch):
    delays = []
    monkeypatch.setattr(_http, "_sleep", delays.append)
    server.fail_next(429, count=5)

    results = F.map_gather(Echo(), args_list=[(str(i),) for i in range(10)])

    assert results == tuple(f"echo: {i}" for i in range(10))
    assert len(delays) == 5


class Panel(nn.Module):
    """Fans one text out to two agents from inside a task."""

    def __init__(self):
        super().__init__()
        self.agents = nn.ModuleList([Echo(), Upper()])

    def forward(self, text):
        return F.bcast_gather(list(self.agents), text)

    async def aforward(self, text):
        return await F.abcast_gather(list(self.agents), text)


def test_nested_sync_gathers_of_agents(server):
    results = F.map_gather(Panel(), args_list=[("a",), ("b",)])

    assert results == (("echo: a", "A"), ("echo: b", "B"))


def test_nested_async_gathers_of_agents(server, run_async):
    results = run_async(F.amap_gather(Panel(), args_list=[("a",), ("b",)]))

    assert results == (("echo: a", "A"), ("echo: b", "B"))


def test_sync_gather_of_agents_inside_async_task(server, run_async):
    async def task(text):
        return F.map_gather(Echo(), args_list=[(text,)])[0]

    results = run_async(F.amap_gather(task, args_list=[("a",), ("b",)]))

    assert results == ("echo: a", "echo: b")


def test_map_gather_200_agents_at_once(server):
    server.hold()
    watcher, arrived = _release_when_all_arrive(server, MANY)

    try:
        results = F.map_gather(Echo(), args_list=[(f"m{i}",) for i in range(MANY)], timeout=50)
    finally:
        server.release()
        watcher.join(35)

    assert arrived == [True]
    assert results == tuple(f"echo: m{i}" for i in range(MANY))


def test_amap_gather_200_agents_at_once(server, run_async):
    server.hold()
    watcher, arrived = _release_when_all_arrive(server, MANY)

    async def main():
        return await F.amap_gather(
            Echo(), args_list=[(f"m{i}",) for i in range(MANY)], timeout=50
        )

    try:
        results = run_async(main())
    finally:
        server.release()
        watcher.join(35)

    assert arrived == [True]
    assert results == tuple(f"echo: m{i}" for i in range(MANY))


def test_agent_calls_keep_caller_loop_free(server, run_async):
    # While the server holds both responses, this coroutine must still resume
    # on the same loop; a blocked loop would never get past the first await.
    server.hold()

    async def main():
        gather = asyncio.ensure_future(F.amap_gather(Echo(), args_list=[("a",), ("b",)]))
        both_sent = await asyncio.to_thread(server.wait_for_requests, 2)
        server.release()
        return both_sent, await gather

    both_sent, results = run_async(main())

    assert both_sent
    assert results == ("echo: a", "echo: b")


def test_map_gather_deadline_with_slow_model(server):
    server.hold()

    try:
        (result,) = F.map_gather(Echo(), args_list=[("late",)], timeout=0.3)
    finally:
        server.release()

    assert isinstance(result, TaskError)
    assert isinstance(result.exception, TimeoutError)


def test_amap_gather_deadline_with_slow_model(server, run_async):
    server.hold()

    try:
        (result,) = run_async(F.amap_gather(Echo(), args_list=[("late",)], timeout=0.3))
    finally:
        server.release()

    assert isinstance(result, TaskError)
    assert isinstance(result.exception, TimeoutError)


def test_spawned_agent_sends_request(server):
    F.spawn(Echo(), "background")

    assert server.wait_for_requests(1)
    assert server.requests[0].body["messages"][-1]["content"] == "background"
