"""The local Messages API server speaks the API's wire format: Anthropic's own SDK reads its answers, streams
and errors, and it refuses the requests the API refuses, with the API's messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from agent_runtime.testing import Faults, Rule, Script, ScriptedAnthropicServer, ScriptedToolCall

KEY = "sk-ant-test-0123456789"
WEATHER = {
    "name": "weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SCRIPT = Script(
    [
        Rule(
            pattern=r"weather in (?P<city>\w+)",
            tool_calls=(ScriptedToolCall(name="weather", arguments={"city": r"\g<city>"}),),
        ),
        Rule(pattern=r"^sunny", on="tool", reply=r"It is \g<0>."),
        Rule(pattern=r"^story$", reply="once upon a time there was an agent"),
        Rule(pattern=r"^overloaded$", status=529),
        Rule(pattern=r"^hiccup$", status=529, reply="half an answer"),
    ]
)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedAnthropicServer]:
    with ScriptedAnthropicServer(SCRIPT, api_key=KEY, retry_after=0.01) as served:
        yield served


@pytest.fixture
def client(server: ScriptedAnthropicServer) -> anthropic.Anthropic:
    server.requests.clear()
    server.faults.clear()
    return anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# Anthropic's SDK reads what the server writes -----------------------------------------------------------


def test_the_sdk_reads_a_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-test", max_tokens=100, system="Be brief.", messages=ask("story")
    )
    assert message.type == "message" and message.role == "assistant" and message.model == "claude-test"
    [block] = message.content
    assert block.type == "text" and block.text == "once upon a time there was an agent"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 8


def test_the_sdk_reads_the_event_sequence_of_a_stream(client: anthropic.Anthropic) -> None:
    events = list(
        client.messages.create(model="claude-test", max_tokens=100, messages=ask("story"), stream=True)
    )
    kinds = [event.type for event in events]
    deltas = kinds.count("content_block_delta")
    assert (
        kinds
        == [
            "message_start",
            "content_block_start",
            *["content_block_delta"] * deltas,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        and deltas > 1
    ), "the SDK skips the ping"
    with client.messages.stream(model="claude-test", max_tokens=100, messages=ask("story")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == final.content[0].text == "once upon a time there was an agent"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 8 and final.usage.input_tokens > 0


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_the_sdk_runs_a_tool_round_trip(client: anthropic.Anthropic, streamed: bool) -> None:
    def create(messages: list[dict[str, Any]]) -> Any:
        request: dict[str, Any] = {
            "model": "claude-test",
            "max_tokens": 100,
            "tools": [WEATHER],
            "messages": messages,
        }
        if not streamed:
            return client.messages.create(**request)
        with client.messages.stream(**request) as stream:
            return stream.get_final_message()

    asked = create(ask("what is the weather in Oslo?"))
    assert asked.stop_reason == "tool_use"
    [use] = asked.content
    assert (use.type, use.name, use.input) == ("tool_use", "weather", {"city": "Oslo"})
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}
    answered = create(
        [
            *ask("what is the weather in Oslo?"),
            {"role": "assistant", "content": asked.content},
            {"role": "user", "content": [result]},
        ]
    )
    assert answered.stop_reason == "end_turn" and answered.content[0].text == "It is sunny."


def test_the_sdk_reads_errors_as_its_own_exceptions(
    client: anthropic.Anthropic, server: ScriptedAnthropicServer
) -> None:
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        client.messages.create(model="claude-test", max_tokens=100, messages=ask("overloaded"))
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "scripted failure (HTTP 529)"},
    }
    assert overloaded.value.response.headers["retry-after"] == "0.01"
    server.faults["*"] = Faults(rate_429=1.0, retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="claude-test", max_tokens=100, messages=ask("story"))
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(
        anthropic.BadRequestError, match="max_tokens: Input should be greater than or equal to 1"
    ):
        client.messages.create(model="claude-test", max_tokens=0, messages=ask("story"))
    stranger = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        stranger.messages.create(model="claude-test", max_tokens=100, messages=ask("story"))


def test_the_sdk_meets_an_error_event_mid_stream(client: anthropic.Anthropic) -> None:
    pieces: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError, match="overloaded_error"),
        client.messages.stream(model="claude-test", max_tokens=100, messages=ask("hiccup")) as stream,
    ):
        pieces.extend(stream.text_stream)
    assert "".join(pieces) == "half an answer"


def test_the_sdk_retries_a_rate_limit_after_its_retry_after(server: ScriptedAnthropicServer) -> None:
    server.requests.clear()
    server.faults["*"] = Faults(rate_429=0.5, retry_after=0.01, seed=1)  # seed 1: a 429, then none
    retrying = anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=2)
    message = retrying.messages.create(model="claude-test", max_tokens=100, messages=ask("story"))
    assert message.content[0].text == "once upon a time there was an agent" and len(server.requests) == 2


# The server refuses what the API refuses ----------------------------------------------------------------

TOOL_USE = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}],
}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": ask("hi")}, "max_tokens: Field required"),
        (
            {"max_tokens": 9, "max_completion_tokens": 9, "messages": ask("hi")},
            "max_completion_tokens: Extra inputs are not permitted",
        ),
        (
            {"max_tokens": 9, "messages": [{"role": "system", "content": "hi"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            {"max_tokens": 9, "messages": [*ask("hi"), *ask("again")]},
            'messages: roles must alternate between "user" and "assistant", but found multiple "user" roles',
        ),
        (
            {"max_tokens": 9, "messages": ask(" ")},
            "messages.0.content.0: text content blocks must contain non-whitespace text",
        ),
        (
            {"max_tokens": 9, "messages": [{"role": "user", "content": []}]},
            "messages.0: all messages must have non-empty content except for the optional final assistant",
        ),
        (
            {"max_tokens": 9, "messages": [*ask("hi"), TOOL_USE, *ask("and?")]},
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1.",
        ),
        (
            {
                "max_tokens": 9,
                "messages": [
                    *ask("hi"),
                    TOOL_USE,
                    {"role": "user", "content": [{"type": "text", "text": "and?"}, RESULT]},
                ],
            },
            "messages.2: `tool_result` blocks must come first in the user message content",
        ),
        (
            {
                "max_tokens": 9,
                "messages": [
                    *ask("hi"),
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": [RESULT]},
                ],
            },
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1.",
        ),
        (
            {
                "max_tokens": 9,
                "messages": ask("hi"),
                "tools": [{"name": "weather", "input_schema": {"type": "string"}}],
            },
            "tools.0.input_schema.type: Input should be 'object'",
        ),
        (
            {
                "max_tokens": 9,
                "messages": ask("hi"),
                "tools": [{"name": "no spaces", "input_schema": {"type": "object"}}],
            },
            "tools.0.name: String should match pattern",
        ),
    ],
)
def test_invalid_requests_are_refused_with_the_apis_message(
    server: ScriptedAnthropicServer, body: dict[str, Any], message: str
) -> None:
    response = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "claude-test", **body},
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(message)


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "x-api-key header is required"),
        ({"x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"}, 401, "invalid x-api-key"),
        ({"x-api-key": KEY}, 400, "anthropic-version: header is required"),
        (
            {"x-api-key": KEY, "anthropic-version": "2024-01-01"},
            400,
            "anthropic-version: invalid version '2024-01-01'",
        ),
        (
            {"authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"},
            400,
            "temperature: Extra inputs are not permitted",
        ),
        ({"x-api-key": KEY, "anthropic-version": "2023-06-01"}, 200, None),
    ],
)
def test_keys_and_versions_are_checked_as_the_api_checks_them(
    server: ScriptedAnthropicServer, headers: dict[str, str], status: int, message: str | None
) -> None:
    """The key as x-api-key or a bearer token; version 2026-10-21 refuses the sampling parameters."""
    body = {"model": "claude-test", "max_tokens": 9, "temperature": 0.5, "messages": ask("hi")}
    response = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers)
    assert response.status_code == status
    if message is not None:
        assert response.json()["error"]["message"] == message
