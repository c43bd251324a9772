"""Model.chat_completion against the local OpenAI-compatible test server."""

import logging
import pickle
import socket
from datetime import datetime, timedelta, timezone

import httpx
import pytest

import msgflux as mf
from msgflux.models import (
    ChatCompletion,
    ModelConfigError,
    ModelConnectionError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
)
from msgflux.models import _http
from msgflux.models.chat import _completion

from chat_server import chat_server, openai_env  # noqa: F401 - pytest fixtures

KEY = "sk-test-0123456789"


@pytest.fixture
def sleeps(monkeypatch):
    """Record retry waits instead of sleeping through them."""
    recorded = []

    async def record_async(seconds):
        recorded.append(seconds)

    monkeypatch.setattr(_http, "_sleep", recorded.append)
    monkeypatch.setattr(_http, "_async_sleep", record_async)
    return recorded


@pytest.fixture
def no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _model(server, **options):
    return mf.Model.chat_completion(
        "openai/gpt-test", base_url=server.base_url, api_key=KEY, **options
    )


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Requests


def test_request_sends_model_and_messages(chat_server):
    _model(chat_server)([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])

    (request,) = chat_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-test"
    assert request.body["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
    ]


def test_request_sends_bearer_key(chat_server):
    _model(chat_server)("hi")

    assert chat_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_string_message_becomes_user_message(chat_server):
    _model(chat_server)("hello")

    assert chat_server.requests[0].body["messages"] == [{"role": "user", "content": "hello"}]


def test_call_options_override_creation_options(chat_server):
    model = _model(chat_server, temperature=0.5, max_tokens=10)

    model("hi", temperature=0.0)

    body = chat_server.requests[0].body
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 10


def test_extra_headers_are_sent(chat_server):
    _model(chat_server, headers={"X-Title": "msgflux tests"})("hi")

    assert chat_server.requests[0].headers["x-title"] == "msgflux tests"


def test_reply_is_parsed_into_chat_completion(chat_server):
    chat_server.set_responder(lambda body: "pong")

    reply = _model(chat_server)("ping")

    assert isinstance(reply, ChatCompletion)
    assert reply.text == "pong"
    assert str(reply) == "pong"
    assert reply.model == "gpt-test"
    assert reply.finish_reason == "stop"
    assert reply.usage == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    assert reply.raw["object"] == "chat.completion"


def test_sequential_calls_reuse_one_connection(chat_server):
    model = _model(chat_server)

    for _ in range(3):
        model("hi")

    assert len({request.client_port for request in chat_server.requests}) == 1


def test_models_share_connections(chat_server):
    _model(chat_server)("a")
    _model(chat_server)("b")

    assert len({request.client_port for request in chat_server.requests}) == 1


def test_async_call_returns_reply(chat_server, run_async):
    chat_server.set_responder(lambda body: "async pong")

    reply = run_async(_model(chat_server).acall("ping"))

    assert reply.text == "async pong"


def test_async_calls_on_one_loop_reuse_connection(chat_server, run_async):
    model = _model(chat_server)

    async def main():
        for _ in range(3):
            await model.acall("hi")

    run_async(main())

    assert len({request.client_port for request in chat_server.requests}) == 1


def test_async_client_closes_with_its_loop(chat_server, run_async):
    model = _model(chat_server)

    async def main():
        await model.acall("hi")
        return await _http.async_client()

    client = run_async(main())

    assert client.is_closed


# Configuration


def test_creation_needs_no_key(no_openai_env):
    model = mf.Model.chat_completion("openai/gpt-4.1-mini")

    assert model.provider == "openai"
    assert model.model_name == "gpt-4.1-mini"


def test_missing_key_raises_at_call(no_openai_env):
    model = mf.Model.chat_completion("openai/gpt-4.1-mini")

    with pytest.raises(ModelConfigError, match=(
        "missing API key for 'openai/gpt-4.1-mini'; set the OPENAI_API_KEY environment "
        "variable or pass api_key= to Model.chat_completion"
    )):
        model("hi")


def test_environment_is_read_at_call_time(no_openai_env, chat_server, monkeypatch):
    model = mf.Model.chat_completion("openai/gpt-test")
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")

    model("hi")

    assert chat_server.requests[0].headers["authorization"] == "Bearer from-env"


def test_code_settings_override_environment(chat_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")

    _model(chat_server)("hi")

    assert chat_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_invalid_base_url_in_environment_raises(no_openai_env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    with pytest.raises(ModelConfigError, match="invalid base URL 'localhost:8000/v1' from OPENAI_BASE_URL"):
        mf.Model.chat_completion("openai/gpt-test")("hi")


def test_invalid_base_url_in_code_raises_at_creation():
    with pytest.raises(ValueError, match="it must start with http:// or https://"):
        mf.Model.chat_completion("openai/x", base_url="127.0.0.1:8000")


def test_unknown_provider_raises_value_error():
    with pytest.raises(ValueError, match=(
        "unknown provider 'acme' in 'acme/model-1'; use one of groq, llamacpp, ollama, "
        "openai, openrouter, together, vllm, or pass base_url="
    )):
        mf.Model.chat_completion("acme/model-1")


def test_unknown_provider_with_base_url_works(chat_server):
    model = mf.Model.chat_completion("acme/model-1", base_url=chat_server.base_url)

    model("hi")

    assert chat_server.requests[0].body["model"] == "model-1"
    assert "authorization" not in chat_server.requests[0].headers


@pytest.mark.parametrize("path", ["gpt-4", "openai/", "/gpt-4", ""])
def test_invalid_model_path_raises_value_error(path):
    with pytest.raises(ValueError, match="write it as 'provider/model'"):
        mf.Model.chat_completion(path)


def test_model_name_may_contain_slashes(chat_server):
    model = mf.Model.chat_completion("vllm/Qwen/Qwen2.5-7B", base_url=chat_server.base_url)

    model("hi")

    assert chat_server.requests[0].body["model"] == "Qwen/Qwen2.5-7B"


def test_ollama_host_variable_sets_base_url(chat_server, monkeypatch):
    host_port = chat_server.base_url.removeprefix("http://").removesuffix("/v1")
    monkeypatch.setenv("OLLAMA_HOST", host_port)

    mf.Model.chat_completion("ollama/llama3")("hi")

    assert chat_server.requests[0].body["model"] == "llama3"
    assert "authorization" not in chat_server.requests[0].headers


def test_vllm_variables_set_base_url_and_key(chat_server, monkeypatch):
    monkeypatch.setenv("VLLM_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key")

    mf.Model.chat_completion("vllm/served-model")("hi")

    assert chat_server.requests[0].headers["authorization"] == "Bearer vllm-key"


def test_model_cannot_be_instantiated():
    with pytest.raises(TypeError, match="Model is a factory"):
        mf.Model()


@pytest.mark.parametrize("option", ["stream", "model", "messages"])
def test_reserved_option_raises_value_error(option):
    with pytest.raises(ValueError, match=f"request option '{option}' cannot be set here"):
        mf.Model.chat_completion("openai/x", **{option: True})


@pytest.mark.parametrize(
    "timeout, error", [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), ("5", TypeError)]
)
def test_invalid_timeout_raises(timeout, error):
    with pytest.raises(error, match="timeout must be a"):
        mf.Model.chat_completion("openai/x", timeout=timeout)


def test_negative_max_retries_raises_value_error():
    with pytest.raises(ValueError, match="max_retries must be 0 or more, got -1"):
        mf.Model.chat_completion("openai/x", max_retries=-1)


def test_empty_messages_raise_value_error(chat_server):
    with pytest.raises(ValueError, match="messages is empty"):
        _model(chat_server)([])


def test_dict_as_messages_raises_type_error(chat_server):
    with pytest.raises(TypeError, match="messages must be a string or a list"):
        _model(chat_server)({"role": "user", "content": "hi"})


def test_message_without_role_raises_type_error(chat_server):
    with pytest.raises(TypeError, match="messages\\[0\\] must be a dict with a 'role' key"):
        _model(chat_server)([{"content": "hi"}])


def test_repr_leaves_key_out():
    model = mf.Model.chat_completion("openai/x", api_key=KEY)

    assert KEY not in repr(model)
    assert repr(model) == "ChatCompletionModel('openai/x')"


# HTTP errors


def test_unauthorized_error_has_status_and_message_without_key(chat_server, sleeps):
    chat_server.require_api_key("the-right-key")

    with pytest.raises(ModelHTTPError) as caught:
        _model(chat_server)("hi")

    error = caught.value
    assert error.status_code == 401
    assert error.server_message == "Incorrect API key provided: ***"
    assert KEY not in str(error)
    assert str(error) == (
        "chat completion for 'openai/gpt-test' failed with HTTP 401: Incorrect API key "
        "provided: ***; check the API key (OPENAI_API_KEY or api_key=)"
    )


def test_client_error_is_not_retried(chat_server, sleeps):
    chat_server.require_api_key("the-right-key")

    with pytest.raises(ModelHTTPError):
        _model(chat_server)("hi")

    assert len(chat_server.requests) == 1
    assert sleeps == []


def test_not_found_error_hints_at_model_name(chat_server):
    model = mf.Model.chat_completion("openai/x", base_url=chat_server.base_url + "/wrong", api_key=KEY)

    with pytest.raises(ModelHTTPError, match="failed with HTTP 404: unknown path /v1/wrong/chat/completions; check the model name and the base URL"):
        model("hi")


def test_http_error_pickles():
    error = ModelHTTPError("text", 429, "slow down")

    clone = pickle.loads(pickle.dumps(error))

    assert (str(clone), clone.status_code, clone.server_message) == ("text", 429, "slow down")


# Retries


@pytest.mark.parametrize("status", [429, 500, 502, 503, 408])
def test_retryable_status_is_retried_until_success(chat_server, sleeps, status):
    chat_server.fail_next(status, count=2)

    reply = _model(chat_server)("hi")

    assert reply.text == "[] hi"
    assert len(chat_server.requests) == 3
    assert len(sleeps) == 2


def test_retries_run_out_with_last_error(chat_server, sleeps):
    chat_server.fail_next(503, count=10)

    with pytest.raises(ModelHTTPError) as caught:
        _model(chat_server, max_retries=2)("hi")

    assert caught.value.status_code == 503
    assert "the server failed; retry later" in str(caught.value)
    assert len(chat_server.requests) == 3


def test_zero_retries_sends_once(chat_server, sleeps):
    chat_server.fail_next(429)

    with pytest.raises(ModelHTTPError, match="HTTP 429: simulated failure; the server is rate limiting"):
        _model(chat_server, max_retries=0)("hi")

    assert len(chat_server.requests) == 1


def test_retry_after_seconds_is_honoured(chat_server, sleeps):
    chat_server.fail_next(429, retry_after="3")

    _model(chat_server)("hi")

    assert 3.0 <= sleeps[0] <= 3.0 * (1 + _http.RETRY_AFTER_JITTER)


def test_retry_after_is_capped(chat_server, sleeps):
    chat_server.fail_next(429, retry_after="86400")

    _model(chat_server)("hi")

    assert _http.RETRY_AFTER_MAX <= sleeps[0] <= _http.RETRY_AFTER_MAX * (1 + _http.RETRY_AFTER_JITTER)


def test_async_retry_after_is_honoured(chat_server, sleeps, run_async):
    chat_server.fail_next(503, retry_after="2")

    reply = run_async(_model(chat_server).acall("hi"))

    assert reply.text == "[] hi"
    assert 2.0 <= sleeps[0] <= 2.0 * (1 + _http.RETRY_AFTER_JITTER)


def test_retry_is_logged_without_key(chat_server, sleeps, caplog):
    chat_server.fail_next(429)

    with caplog.at_level(logging.INFO, logger="msgflux"):
        _model(chat_server)("hi")

    (record,) = [r for r in caplog.records if r.name == "msgflux.models._http"]
    assert record.levelno == logging.INFO
    assert "retrying chat completion for 'openai/gpt-test'" in record.getMessage()
    assert "after HTTP 429 (retry 1 of 3)" in record.getMessage()
    assert KEY not in caplog.text


def test_retry_after_header_as_http_date():
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    headers = httpx.Headers({"Retry-After": when.strftime("%a, %d %b %Y %H:%M:%S GMT")})

    assert 25 <= _http.retry_after_seconds(headers) <= 30


def test_retry_after_ms_header_wins():
    headers = httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})

    assert _http.retry_after_seconds(headers) == 0.25


@pytest.mark.parametrize("value", ["soon", "nan", ""])
def test_unreadable_retry_after_is_ignored(value):
    assert _http.retry_after_seconds(httpx.Headers({"retry-after": value})) is None


def test_past_retry_after_date_means_no_wait():
    headers = httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})

    assert _http.retry_after_seconds(headers) == 0.0


@pytest.mark.parametrize("attempt", range(6))
def test_backoff_doubles_with_jitter_up_to_cap(attempt):
    ceiling = min(_http.BACKOFF_MAX, _http.BACKOFF_INITIAL * 2**attempt)

    delays = [_http.retry_delay(attempt, None) for _ in range(50)]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


# Timeouts and connection errors


def test_slow_server_raises_timeout_error(chat_server, sleeps):
    chat_server.hold()

    with pytest.raises(ModelTimeoutError, match="timed out after 0.2 s") as caught:
        _model(chat_server, timeout=0.2, max_retries=0)("hi")

    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


def test_timeout_is_retried(chat_server, sleeps):
    chat_server.hold()

    with pytest.raises(ModelTimeoutError):
        _model(chat_server, timeout=0.2, max_retries=1)("hi")

    assert chat_server.wait_for_requests(2)
    assert len(sleeps) == 1


def test_async_slow_server_raises_timeout_error(chat_server, sleeps, run_async):
    chat_server.hold()

    with pytest.raises(ModelTimeoutError):
        run_async(_model(chat_server, timeout=0.2, max_retries=0).acall("hi"))


def test_connection_refused_raises_connection_error_after_retries(sleeps):
    model = mf.Model.chat_completion(
        "openai/x", base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key=KEY, max_retries=2
    )

    with pytest.raises(ModelConnectionError, match="could not reach http://127.0.0.1:") as caught:
        model("hi")

    assert isinstance(caught.value, ConnectionError)
    assert len(sleeps) == 2


# Response shape


def test_response_without_choices_raises_response_error():
    with pytest.raises(ModelResponseError, match="has no choices in its response; the server returned keys \\['id'\\]"):
        _completion("openai/x", {"id": "1"})


def test_tool_call_response_gives_empty_text():
    body = {"choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "tool_calls"}]}

    assert _completion("openai/x", body).text == ""
