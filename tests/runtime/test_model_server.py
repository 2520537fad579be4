"""The scripted model server, driven by the stock ``openai`` client."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from agent_runtime.testing import Rule, Script, ScriptedModelServer, ScriptedToolCall, embed
from agent_runtime.testing.serve import bind_socket

SCRIPT = Script(
    [
        Rule(
            pattern=r"weather in (?P<city>\w+)",
            tool_calls=[ScriptedToolCall(name="weather", arguments={"city": r"\g<city>", "units": ["C"]})],
        ),
        Rule(pattern=r"^sunny", on="tool", reply=r"It is \g<0>."),
        Rule(
            pattern=r"^both$",
            reply="thinking",
            tool_calls=[ScriptedToolCall(name="a"), ScriptedToolCall(name="b")],
        ),
    ]
)


@pytest.fixture(scope="module")
def server() -> ScriptedModelServer:
    with ScriptedModelServer(SCRIPT) as running:
        yield running


@pytest.fixture
def client(server: ScriptedModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_rules_decide_tool_calls_and_replies(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "weather in Oslo?"}]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert (call.id, call.function.name) == ("call_1_0", "weather")
    assert json.loads(call.function.arguments) == {"city": "Oslo", "units": ["C"]}
    messages = [
        {"role": "user", "content": "weather in Oslo?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = client.chat.completions.create(model="m", messages=messages)
    assert second.choices[0].message.content == "It is sunny."
    assert second.usage is not None and second.usage.total_tokens == (
        second.usage.prompt_tokens + second.usage.completion_tokens
    )


def test_unmatched_messages_are_echoed(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "anything at all"}]
    )
    assert reply.choices[0].message.content == "anything at all"


def test_streaming_with_text_tool_calls_and_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "both"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "thinking"
    names = [
        tc.function.name
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function and tc.function.name
    ]
    assert names == ["a", "b"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI) -> None:
    response = client.embeddings.create(
        model="e", input=["red apples", "red apples", "blue sky"], dimensions=64
    )
    a, b, c = (item.embedding for item in response.data)
    assert len(a) == 64 and a == pytest.approx(b)
    assert math.sqrt(sum(x * x for x in a)) == pytest.approx(1.0)
    assert a == pytest.approx(embed("red apples", 64), abs=1e-6)
    overlap = sum(x * y for x, y in zip(a, embed("red cars", 64), strict=True))
    unrelated = sum(x * y for x, y in zip(a, c, strict=True))
    assert overlap > unrelated


def test_float_encoding_and_a_bad_input(server: ScriptedModelServer) -> None:
    response = httpx.post(f"{server.base_url}/embeddings", json={"input": "x", "encoding_format": "float"})
    assert len(response.json()["data"][0]["embedding"]) == 384
    assert httpx.post(f"{server.base_url}/embeddings", json={"input": 3}).status_code == 400


def test_requests_are_recorded(server: ScriptedModelServer, client: openai.OpenAI) -> None:
    server.requests.clear()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], temperature=0)
    assert server.requests == [
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    ]


def test_scripts_load_from_json() -> None:
    script = Script.from_json({"rules": [{"pattern": "x", "reply": "y", "delay": 0.5}]})
    assert script.rules == (Rule(pattern="x", reply="y", delay=0.5),)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Script.from_json([{"pattern": "x", "replies": "y"}])


def test_runs_as_a_module(tmp_path: Path) -> None:
    script = tmp_path / "rules.json"
    script.write_text(json.dumps([{"pattern": "ping", "reply": "pong"}]))
    with bind_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "agent_runtime.testing", "--port", str(port), "--script", str(script)]
    process = subprocess.Popen(command, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        deadline = time.monotonic() + 20
        while True:
            try:
                reply = client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "ping"}]
                )
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "the model server did not start"
                time.sleep(0.1)
        assert reply.choices[0].message.content == "pong"
    finally:
        process.terminate()
        process.wait(timeout=10)
