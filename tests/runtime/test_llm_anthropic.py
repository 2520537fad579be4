"""The Anthropic provider over real HTTP against the local Messages API server, which refuses what the API
refuses: translation, plain and streamed answers, tool calls through the real loop, usage, errors and
retries, and the runtime served as its container serves it, answering the stock ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
from raw_model import Answer, RawModel
from runtime_helpers import SCRIPT, USER_KEY, Runtime, RuntimeFactory
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_runtime.errors import ConfigurationError, ModelError
from agent_runtime.llm import PROGRESS, Completion, Progress, TextDelta, ToolCall, create_model
from agent_runtime.llm_anthropic import AnthropicModel
from agent_runtime.settings import Settings
from agent_runtime.testing import Faults, Rule, Script, ScriptedAnthropicServer, ServerThread
from agent_runtime.testing.serve import bind_socket

T = TypeVar("T")
KEY = "sk-ant-test-0123456789"
RETRY_AFTER = 0.05
STORY = "once upon a time there was an agent"
ANTHROPIC_SCRIPT = Script(
    [
        Rule(pattern=r"^overloaded$", status=529),
        Rule(pattern=r"^rate limited$", status=429),
        Rule(pattern=r"^refused$", status=400),
        # Streamed, the text arrives and then the stream fails; plain, it is an HTTP 529.
        Rule(pattern=r"^hiccup$", status=529, reply="half an answer"),
        Rule(pattern=r"^ramble$", reply="one two three four five six seven eight nine ten"),
        *SCRIPT.rules,
    ]
)
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate arithmetic.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
FAST_RETRIES = {"llm_max_retries": 2, "retry_base_seconds": 0.01, "retry_max_seconds": 1.0}


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[ScriptedAnthropicServer]:
    with ScriptedAnthropicServer(ANTHROPIC_SCRIPT, api_key=KEY, retry_after=RETRY_AFTER) as server:
        yield server


@pytest.fixture
def anthropic(anthropic_server: ScriptedAnthropicServer) -> ScriptedAnthropicServer:
    """The module's server, with this test's requests only."""
    anthropic_server.requests.clear()
    anthropic_server.headers.clear()
    anthropic_server.faults.clear()
    return anthropic_server


@pytest.fixture
def on_anthropic(runtime_factory: RuntimeFactory, anthropic: ScriptedAnthropicServer) -> RuntimeFactory:
    """Start a runtime whose model is the Anthropic server (settings overridable)."""

    def start(**overrides: Any) -> Runtime:
        provider = {"llm_provider": "anthropic", "llm_endpoint": anthropic.url, "llm_auth": "api_key"}
        return runtime_factory(**(provider | {"llm_api_key": KEY} | overrides))

    return start


def settings_for(url: str, **overrides: Any) -> Settings:
    return Settings(**({"llm_provider": "anthropic", "llm_endpoint": url, "llm_api_key": KEY} | overrides))


def call(url: str, action: Callable[[AnthropicModel], Awaitable[T]], **settings: Any) -> T:
    """``action`` on a model built from settings, closed afterwards."""

    async def run() -> T:
        model = AnthropicModel.from_settings(settings_for(url, **settings))
        try:
            return await action(model)
        finally:
            await model.close()

    return asyncio.run(run())


def complete(url: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    return call(url, lambda model: model.complete("claude-test", messages, **kwargs))


def stream(url: str, messages: list[dict[str, Any]], **kwargs: Any) -> list[TextDelta | Completion]:
    async def events(model: AnthropicModel) -> list[TextDelta | Completion]:
        return [event async for event in model.stream("claude-test", messages, **kwargs)]

    return call(url, events)


def answer_of(url: str, messages: list[dict[str, Any]], streamed: bool, **kwargs: Any) -> Completion:
    answer = stream(url, messages, **kwargs)[-1] if streamed else complete(url, messages, **kwargs)
    assert isinstance(answer, Completion)
    return answer


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def tool_call(call_id: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "calculator", "arguments": arguments}}


# Translation ------------------------------------------------------------------------------------------


def test_the_conversation_is_translated_to_the_messages_api(anthropic: ScriptedAnthropicServer) -> None:
    """System messages go up front, tool calls become tool_use blocks, the results of one step one user
    turn, text parts text blocks; the server accepting it proves the turns are what the API takes."""
    conversation = [
        {"role": "system", "content": "Be brief."},
        *user("add twice"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                tool_call("toolu_a", '{"expression": "1+1"}'),
                tool_call("toolu_b", '{"expression": "2+2"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": "2"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "4"},
        {"role": "assistant", "content": "2 and 4."},
        {"role": "developer", "content": "Answer in words."},
        {"role": "user", "content": [{"type": "text", "text": "story"}]},
    ]
    assert complete(anthropic.url, conversation, tools=[CALCULATOR], max_output_tokens=77).content == STORY
    [request] = anthropic.requests
    assert request == {
        "model": "claude-test",
        "max_tokens": 77,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "add twice"}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_a",
                        "name": "calculator",
                        "input": {"expression": "1+1"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_b",
                        "name": "calculator",
                        "input": {"expression": "2+2"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": "2"},
                    {"type": "tool_result", "tool_use_id": "toolu_b", "content": "4"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "2 and 4."}]},
            {"role": "user", "content": [{"type": "text", "text": "story"}]},
        ],
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in words."}],
        "tools": [
            {
                "name": "calculator",
                "input_schema": CALCULATOR["function"]["parameters"],
                "description": "Evaluate arithmetic.",
            }
        ],
    }
    [headers] = anthropic.headers
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json" and "authorization" not in headers


def test_max_tokens_defaults_to_the_setting_and_what_is_empty_is_left_out(
    anthropic: ScriptedAnthropicServer,
) -> None:
    complete(anthropic.url, user("hi"))
    call(anthropic.url, lambda model: model.complete("claude-test", user("hi")), max_output_tokens=321)
    first, second = anthropic.requests
    assert first["max_tokens"] == Settings().max_output_tokens and second["max_tokens"] == 321
    assert first.keys() == {"model", "max_tokens", "messages"}, "no empty system, tools, or stream flag"


def test_a_malformed_earlier_call_is_sent_as_an_empty_input(anthropic: ScriptedAnthropicServer) -> None:
    """Arguments that are not a JSON object (which the loop answered with an error result) cannot be sent
    as they are: the API takes only objects."""
    conversation = [
        *user("calc"),
        {"role": "assistant", "content": None, "tool_calls": [tool_call("toolu_x", "{not json")]},
        {"role": "tool", "tool_call_id": "toolu_x", "content": "invalid arguments: not JSON"},
    ]
    assert complete(anthropic.url, conversation, tools=[CALCULATOR]).content == "invalid arguments: not JSON"
    assert anthropic.requests[0]["messages"][1]["content"][0]["input"] == {}


def test_every_request_carries_the_header_hooks_headers(anthropic: ScriptedAnthropicServer) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def chat() -> None:
        model = AnthropicModel(
            anthropic.url, KEY, header_hooks=[lambda headers: headers.update(traceparent=traceparent)]
        )
        try:
            await model.complete("claude-test", user("hi"))
        finally:
            await model.close()

    asyncio.run(chat())
    assert anthropic.headers[0]["traceparent"] == traceparent


# Answers ----------------------------------------------------------------------------------------------


def test_a_plain_answer_has_its_text_stop_reason_and_usage(
    anthropic: ScriptedAnthropicServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.usage")
    answer = complete(anthropic.url, [{"role": "system", "content": "Be brief."}, *user("story")])
    assert (answer.content, answer.tool_calls, answer.finish_reason) == (STORY, (), "stop")
    usage = answer.usage
    assert usage.completion_tokens == 8 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    [record] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentstage.usage"]
    assert record["total_tokens"] == usage.total_tokens and record["model"] == "claude-test"


def test_a_streamed_answer_arrives_in_pieces_and_ends_as_the_plain_one(
    anthropic: ScriptedAnthropicServer,
) -> None:
    plain = complete(anthropic.url, user("story"))
    *deltas, streamed = stream(anthropic.url, user("story"))
    assert anthropic.requests[1]["stream"] is True
    assert len(deltas) > 1 and "".join(d.text for d in deltas if isinstance(d, TextDelta)) == STORY
    assert isinstance(streamed, Completion)
    assert (streamed.content, streamed.finish_reason, streamed.usage) == (
        plain.content,
        plain.finish_reason,
        plain.usage,
    ), "message_start's input usage and message_delta's output usage add up as the plain answer's"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_several_tool_calls_come_back_as_tool_calls_with_json_arguments(
    anthropic: ScriptedAnthropicServer, streamed: bool
) -> None:
    answer = answer_of(anthropic.url, user("two tools"), streamed, tools=[CALCULATOR])
    assert answer.content is None and answer.finish_reason == "tool_calls"
    first, second = answer.tool_calls
    assert first.id != second.id and first.id.startswith("toolu_")
    assert [(c.name, json.loads(c.arguments)) for c in answer.tool_calls] == [
        ("calculator", {"expression": "1+1"})
    ] * 2


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_an_answer_cut_at_max_tokens_says_length(anthropic: ScriptedAnthropicServer, streamed: bool) -> None:
    answer = answer_of(anthropic.url, user("ramble"), streamed, max_output_tokens=3)
    assert (answer.content, answer.finish_reason, answer.usage.completion_tokens) == (
        "one two three",
        "length",
        3,
    )


# Usage with prompt caching, and a stream cut short: answers the scripted server does not give -------------

CACHED_USAGE = {"input_tokens": 12, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}


def _canned_app() -> Starlette:
    """A Messages API answering "cached" with prompt-cache usage; model "truncated" streams without the
    final message_stop."""

    async def messages(request: Request) -> Response:
        body = await request.json()
        message = {
            "id": "msg_canned",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "cached"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {**CACHED_USAGE, "output_tokens": 5},
        }
        if not body.get("stream"):
            return JSONResponse(message)
        events = [
            {
                "type": "message_start",
                "message": {**message, "content": [], "usage": {**CACHED_USAGE, "output_tokens": 1}},
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "cached"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
            {"type": "message_stop"},
        ]
        if body["model"] == "truncated":
            events.pop()
        sse = "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events)
        return StreamingResponse(iter([sse]), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


@pytest.fixture(scope="module")
def canned() -> Iterator[ServerThread]:
    with ServerThread(_canned_app()) as server:
        yield server


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_prompt_cache_reads_and_writes_count_as_prompt_tokens(canned: ServerThread, streamed: bool) -> None:
    usage = answer_of(canned.url, user("hi"), streamed).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1112, 5, 1117)


def test_a_stream_ending_before_message_stop_is_a_malformed_answer(canned: ServerThread) -> None:
    async def consume(model: AnthropicModel) -> None:
        async for _ in model.stream("truncated", user("hi")):
            pass

    with pytest.raises(ModelError, match="malformed response") as raised:
        call(canned.url, consume)
    assert raised.value.retryable


def _raw(answer: Answer, streamed: bool) -> list[TextDelta | Progress | Completion]:
    """The events of one call (a plain call's completion alone) to an endpoint answering ``answer``."""
    raw = RawModel(lambda body: answer)

    async def events(model: AnthropicModel) -> list[TextDelta | Progress | Completion]:
        if not streamed:
            return [await model.complete("claude-test", user("hi"))]
        return [event async for event in model.stream("claude-test", user("hi"))]

    try:
        return call(raw.url, events)
    finally:
        raw.close()


def _message(*blocks: dict[str, Any], stop_reason: Any = "end_turn") -> dict[str, Any]:
    usage = {"input_tokens": 5, "output_tokens": 3}
    return {
        "type": "message",
        "role": "assistant",
        "content": list(blocks),
        "stop_reason": stop_reason,
        "usage": usage,
    }


def _events(*middle: dict[str, Any], stop_reason: Any = "end_turn") -> list[dict[str, Any] | str | bytes]:
    """A stream: ``message_start``, the ``middle`` events, ``message_delta`` with the stop reason, the stop."""
    return [
        {
            "type": "message_start",
            "message": {**_message(), "usage": {"input_tokens": 5, "output_tokens": 1}},
        },
        *middle,
        {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    ]


def _text_delta(text: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}


def _tool_start(call_id: Any = "toolu_1") -> dict[str, Any]:
    block = {"type": "tool_use", "id": call_id, "name": "calculator", "input": {}}
    return {"type": "content_block_start", "index": 0, "content_block": block}


def _json_delta(partial: Any) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": partial},
    }


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "1+1"}}
WRONG_TYPES: dict[str, tuple[Answer, bool]] = {
    "text that is a number": (_message({"type": "text", "text": 123}), False),
    "a tool use id that is a number": (_message({**TOOL_USE, "id": 7}, stop_reason="tool_use"), False),
    "a stop reason that is a number": (_message({"type": "text", "text": "Hi"}, stop_reason=5), False),
    "streamed text that is a number": (_events(_text_delta("Hello, "), _text_delta(123)), True),
    "streamed input that is an object": (_events(_tool_start(), _json_delta({"expression": "1+1"})), True),
    "a streamed tool use id that is a number": (_events(_tool_start(7), _json_delta("{}")), True),
    "a streamed stop reason that is a number": (_events(_text_delta("Hi"), stop_reason=5), True),
}


@pytest.mark.parametrize(("answer", "streamed"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_field_of_the_wrong_type_is_a_malformed_answer(answer: Answer, streamed: bool) -> None:
    with pytest.raises(ModelError, match="malformed response"):
        _raw(answer, streamed)


def test_tool_use_pieces_are_progress_and_pings_nothing() -> None:
    """What the gateway's per-event timeout counts as progress: a piece of the answer, text or tool call."""
    ping = {"type": "ping"}
    answer = _events(
        _tool_start(), ping, _json_delta('{"expression": '), _json_delta('"1+1"}'), stop_reason="tool_use"
    )
    *pieces, completion = _raw(answer, streamed=True)
    assert pieces == [PROGRESS] * 3
    assert isinstance(completion, Completion) and completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("toolu_1", "calculator", '{"expression": "1+1"}'),)


# Errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status", "retryable", "wait"),
    [
        ("overloaded", 529, True, RETRY_AFTER),
        ("rate limited", 429, True, RETRY_AFTER),
        ("fail", 500, True, None),
        ("refused", 400, False, None),
    ],
)
def test_http_errors_carry_the_apis_message_and_whether_a_retry_may_help(
    anthropic: ScriptedAnthropicServer, text: str, status: int, retryable: bool, wait: float | None
) -> None:
    with pytest.raises(ModelError) as raised:
        complete(anthropic.url, user(text))
    error = raised.value
    assert error.message == f"the model endpoint answered HTTP {status}: scripted failure (HTTP {status})"
    assert (error.retryable, error.retry_after) == (retryable, wait)


def test_what_the_api_refuses_is_a_clear_error_that_is_not_retried(
    anthropic: ScriptedAnthropicServer,
) -> None:
    orphan = [
        *user("hi"),
        {"role": "assistant", "content": "ok"},
        {"role": "tool", "tool_call_id": "toolu_x", "content": "1"},
    ]
    with pytest.raises(ModelError) as raised:
        complete(anthropic.url, orphan)
    assert raised.value.message.startswith(
        "the model endpoint answered HTTP 400: messages.2.content.0: unexpected `tool_use_id` found in "
        "`tool_result` blocks: toolu_x."
    )
    assert not raised.value.retryable
    with pytest.raises(ModelError, match="HTTP 401: invalid x-api-key") as raised:
        call(
            anthropic.url, lambda model: model.complete("claude-test", user("hi")), llm_api_key="sk-ant-wrong"
        )
    assert not raised.value.retryable


def test_an_error_event_mid_stream_is_a_retryable_model_error(anthropic: ScriptedAnthropicServer) -> None:
    received: list[TextDelta | Completion] = []

    async def consume(model: AnthropicModel) -> None:
        async for event in model.stream("claude-test", user("hiccup")):
            received.append(event)

    with pytest.raises(ModelError) as raised:
        call(anthropic.url, consume)
    assert "".join(event.text for event in received if isinstance(event, TextDelta)) == "half an answer"
    assert raised.value.message == (
        "the model endpoint failed mid-stream: overloaded_error: scripted failure (HTTP 529)"
    )
    assert raised.value.retryable


def test_embeddings_are_refused_with_what_to_do_instead_and_nothing_is_contacted() -> None:
    """Construction opens no connection: the endpoint here does not exist, yet the error is the clear one."""
    with pytest.raises(ModelError) as raised:
        call("http://127.0.0.1:9", lambda model: model.embed(["text"], model="embedder", dimensions=8))
    assert not raised.value.retryable
    assert "Anthropic's API has no embeddings" in raised.value.message
    assert "llm_provider=openai, azure_openai or bedrock" in raised.value.message


def test_the_settings_choose_anthropic_and_an_authentication_it_cannot_take_is_refused() -> None:
    model = create_model(settings_for("http://127.0.0.1:9"))
    assert isinstance(model, AnthropicModel)
    asyncio.run(model.close())
    with pytest.raises(ConfigurationError, match="authenticates with an API key: set llm_auth=api_key"):
        create_model(settings_for("http://127.0.0.1:9", llm_auth="entra"))
    with pytest.raises(ConfigurationError, match="needs llm_api_key"):
        create_model(settings_for("http://127.0.0.1:9", llm_api_key=None))


# Through the runtime ------------------------------------------------------------------------------------


def test_the_tool_loop_runs_on_anthropic(
    on_anthropic: RuntimeFactory, anthropic: ScriptedAnthropicServer
) -> None:
    response = on_anthropic().invoke("assistant", "calc 6*7")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == "42"
    asked, answered = anthropic.requests
    assert asked["system"] == [{"type": "text", "text": "Be brief."}]
    assert "calculator" in [tool["name"] for tool in asked["tools"]]
    [use] = answered["messages"][-2]["content"]
    assert (use["type"], use["name"], use["input"]) == ("tool_use", "calculator", {"expression": "6*7"})
    assert answered["messages"][-1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "42"}],
    }
    model_steps = [step for step in body["steps"] if step["kind"] == "model"]
    assert [step["finish_reason"] for step in model_steps] == ["tool_calls", "stop"]
    assert body["usage"]["total_tokens"] == sum(step["usage"]["total_tokens"] for step in model_steps) > 0


def test_several_tool_results_go_back_in_one_user_turn(
    on_anthropic: RuntimeFactory, anthropic: ScriptedAnthropicServer
) -> None:
    response = on_anthropic().invoke("assistant", "two tools")
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == "2\n2"
    uses = anthropic.requests[1]["messages"][-2]["content"]
    results = anthropic.requests[1]["messages"][-1]["content"]
    assert [r["tool_use_id"] for r in results] == [u["id"] for u in uses] and len(uses) == 2


@pytest.mark.parametrize(
    ("text", "status", "attempts"),
    [("overloaded", 529, 3), ("rate limited", 429, 3), ("fail", 500, 3), ("refused", 400, 1)],
)
def test_the_runtime_retries_what_a_retry_may_fix_honouring_retry_after(
    on_anthropic: RuntimeFactory, anthropic: ScriptedAnthropicServer, text: str, status: int, attempts: int
) -> None:
    runtime = on_anthropic(**FAST_RETRIES)
    started = time.monotonic()
    response = runtime.invoke("restricted", text)
    elapsed = time.monotonic() - started
    assert response.status_code == 502, response.text
    assert response.json()["error"] == {
        "code": "model_error",
        "message": f"the model endpoint answered HTTP {status}: scripted failure (HTTP {status})",
    }
    assert len(anthropic.requests) == attempts
    if status in (429, 529):
        assert elapsed >= 2 * RETRY_AFTER, "each retry waited at least the endpoint's retry-after"


def test_a_rate_limited_call_succeeds_when_retried(
    on_anthropic: RuntimeFactory, anthropic: ScriptedAnthropicServer
) -> None:
    anthropic.faults["*"] = Faults(rate_429=0.5, retry_after=RETRY_AFTER, seed=1)  # seed 1: a 429, then none
    response = on_anthropic(**FAST_RETRIES).invoke("restricted", "story")
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == STORY and len(anthropic.requests) == 2


def test_a_stream_failing_before_any_text_is_retried_and_one_failing_after_is_not(
    on_anthropic: RuntimeFactory, anthropic: ScriptedAnthropicServer
) -> None:
    runtime = on_anthropic(**FAST_RETRIES)

    def chat(text: str) -> httpx.Response:
        return runtime.post(
            "/v1/chat/completions", {"model": "restricted", "messages": user(text), "stream": True}
        )

    response = chat("overloaded")
    assert response.status_code == 502 and len(anthropic.requests) == 3, response.text
    anthropic.requests.clear()
    response = chat("hiccup")
    assert response.status_code == 200 and len(anthropic.requests) == 1, "text reached the caller: no retry"
    last = [line for line in response.text.splitlines() if line.startswith("data: ")][-1]
    assert json.loads(last.removeprefix("data: "))["error"]["code"] == "model_error"


# The runtime as its container runs it, configured by AGENTSTAGE_* variables, answering the openai client --


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the runtime exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the runtime did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def served_runtime(
    anthropic_server: ScriptedAnthropicServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``uvicorn agent_runtime.api:serve_app --factory``, as the container image runs it."""
    state = tmp_path_factory.mktemp("anthropic-runtime")
    with bind_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    agent = {
        "name": "assistant",
        "model": "claude-sonnet-4-5",
        "instructions": "Be brief.",
        "tools": ["calculator"],
    }
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENTSTAGE_")} | {
        "AGENTSTAGE_LLM_PROVIDER": "anthropic",
        "AGENTSTAGE_LLM_ENDPOINT": anthropic_server.url,
        "AGENTSTAGE_LLM_API_KEY": KEY,
        "AGENTSTAGE_AGENTS": json.dumps([agent]),
        "AGENTSTAGE_API_KEYS": json.dumps({USER_KEY: {"caller": "alice", "roles": ["user"]}}),
        "AGENTSTAGE_SQLITE_PATH": str(state / "state.db"),
    }
    log = state / "runtime.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "agent_runtime.api:serve_app",
        "--factory",
        "--port",
        str(port),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=state, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def client(served_runtime: str, anthropic: ScriptedAnthropicServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served_runtime}/v1", api_key=USER_KEY, max_retries=0)


def test_the_openai_client_chats_with_an_agent_on_anthropic(
    client: openai.OpenAI, anthropic: ScriptedAnthropicServer
) -> None:
    reply = client.chat.completions.create(model="assistant", messages=user("story"))
    assert reply.choices[0].message.content == STORY
    assert reply.usage is not None and reply.usage.total_tokens > 0
    [request] = anthropic.requests
    assert request["model"] == "claude-sonnet-4-5" and anthropic.headers[0]["x-api-key"] == KEY


def test_the_openai_client_streams_from_an_agent_on_anthropic(
    client: openai.OpenAI, anthropic: ScriptedAnthropicServer
) -> None:
    chunks = list(client.chat.completions.create(model="assistant", messages=user("story"), stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == STORY and len(pieces) > 1
    assert anthropic.requests[0]["stream"] is True


def test_an_agent_on_anthropic_calls_its_tool_for_the_openai_client(
    client: openai.OpenAI, anthropic: ScriptedAnthropicServer
) -> None:
    reply = client.chat.completions.create(model="assistant", messages=user("calc 2**10"))
    assert reply.choices[0].message.content == "1024"
    assert anthropic.requests[1]["messages"][-1]["content"][0]["type"] == "tool_result"
