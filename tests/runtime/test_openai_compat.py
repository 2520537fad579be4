"""The stock ``openai`` client (sync, async, streaming) talks to an agent through the runtime."""

from __future__ import annotations

import asyncio

import openai
import pytest
from runtime_helpers import USER_KEY, Runtime


def client(runtime: Runtime) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0)


def async_client(runtime: Runtime) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0)


def test_sync_client_runs_the_agent_and_its_tool(runtime: Runtime) -> None:
    completion = client(runtime).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "calc 6*7"}]
    )
    assert completion.choices[0].message.content == "42"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "assistant"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_the_model_sees_instructions_and_tool_schemas(runtime: Runtime, model) -> None:
    client(runtime).chat.completions.create(model="restricted", messages=[{"role": "user", "content": "hi"}])
    [request] = model.requests
    assert request["messages"][0] == {"role": "system", "content": "Only arithmetic."}
    [tool] = request["tools"]
    assert tool["function"]["name"] == "calculator"
    assert tool["function"]["parameters"]["required"] == ["expression"]


def test_async_client(runtime: Runtime) -> None:
    async def chat() -> str | None:
        async with openai.AsyncOpenAI(
            base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0
        ) as aclient:
            completion = await aclient.chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
            )
            return completion.choices[0].message.content

    assert asyncio.run(chat()) == "hello"


def test_streaming_yields_openai_chunks_and_final_usage(runtime: Runtime) -> None:
    stream = client(runtime).chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "once upon a time there was an agent"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "streamed in pieces"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_through_a_tool_call(runtime: Runtime) -> None:
    stream = client(runtime).chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "calc 2**10"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "1024"
    assert all(c.usage is None for c in chunks), "no usage chunk unless asked for"


def test_async_streaming(runtime: Runtime) -> None:
    async def chat() -> str:
        async with openai.AsyncOpenAI(
            base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0
        ) as aclient:
            stream = await aclient.chat.completions.create(
                model="assistant", messages=[{"role": "user", "content": "story"}], stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(chat()) == "once upon a time there was an agent"


def test_models_lists_the_agents(runtime: Runtime) -> None:
    assert [m.id for m in client(runtime).models.list()] == ["assistant", "restricted"]


def test_unknown_agent_is_a_404_the_client_understands(runtime: Runtime) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(runtime).chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body == {
        "code": "unknown_agent",
        "message": "no agent named 'nobody'",
        "field": "model",
    }


def test_a_failing_model_is_a_502_also_when_streaming(runtime: Runtime) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client(runtime).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "fail"}], stream=True
        )
    assert raised.value.status_code == 502
    assert raised.value.body["code"] == "model_error"


def test_a_wrong_key_is_a_401(runtime: Runtime) -> None:
    bad = openai.OpenAI(base_url=f"{runtime.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
