"""The streaming leak report, replayed over real HTTP: a model streams an OpenAI key, an AWS key id, a GitHub
token, an e-mail address and a card number in token-sized pieces. Through the runtime's API (the stock
``openai`` client), from a tool's output, into stored history: nothing planted leaves, the streamed text
equals the plain answer, and ``block`` mode ends the stream with an error event instead of the value."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from runtime_helpers import LEAKY_ANSWER, PLANTED, USER_KEY, Runtime, RuntimeFactory, calls, make_registry

from agent_runtime.api import create_app
from agent_runtime.caller import Caller
from agent_runtime.runner import RunOptions, RunResult
from agent_runtime.testing import Rule, Script, ScriptedModelServer


def _chunking(seed: int) -> tuple[int, ...]:
    sizes = random.Random(seed)
    return tuple(sizes.randint(1, 4) for _ in range(40))


CHUNKINGS = [_chunking(seed) for seed in range(6)]


@pytest.fixture(scope="module")
def leaky_model() -> Iterator[ScriptedModelServer]:
    """Answers ``leak N`` with the planted values in chunking N; echoes tool output in 1-4 character pieces."""
    rules = [
        Rule(pattern=f"^leak {index}$", reply=LEAKY_ANSWER, chunk_sizes=sizes)
        for index, sizes in enumerate(CHUNKINGS)
    ]
    rules += [
        Rule(pattern=r"^key first$", reply=f"{PLANTED['api_key']} is the key.", chunk_sizes=(2, 3, 1)),
        Rule(pattern=r"^fetch (?P<url>\S+)$", tool_calls=calls("http_get", {"url": r"\g<url>"})),
        Rule(pattern=r"(?s)(?P<result>.+)", on="tool", reply=r"\g<result>", chunk_sizes=(2, 1, 4, 3)),
    ]
    with ScriptedModelServer(Script(rules)) as server:
        yield server


@pytest.fixture
def leaky_runtime(runtime_factory: RuntimeFactory, leaky_model: ScriptedModelServer) -> Runtime:
    return runtime_factory(llm_endpoint=leaky_model.base_url)


def _events(runtime: Runtime, text: str) -> tuple[int, list[str]]:
    """The status and the data of every server-sent event of a streamed chat completion."""
    with runtime.http.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "assistant", "stream": True, "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {USER_KEY}"},
    ) as response:
        return response.status_code, [
            line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")
        ]


def _stream(runtime: Runtime, text: str) -> tuple[str, str]:
    """The streamed answer as the ``openai`` client assembles it, and every event that crossed the wire."""
    status, events = _events(runtime, text)
    assert status == 200, events
    raw = "\n".join(events)
    client = openai.OpenAI(base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0)
    chunks = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": text}], stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    return streamed, raw


def _plain(runtime: Runtime, text: str) -> str:
    response = runtime.post(
        "/v1/chat/completions", {"model": "assistant", "messages": [{"role": "user", "content": text}]}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def _assert_nothing_planted(text: str, where: str) -> None:
    for kind, value in PLANTED.items():
        assert value not in text, f"the {kind} leaked in {where}"
        for half in (value[: len(value) // 2 + 2], value[len(value) // 2 - 2 :]):
            assert half not in text, f"half of the {kind} leaked in {where}: {half!r}"


@pytest.mark.parametrize("chunking", range(len(CHUNKINGS)))
def test_a_streamed_answer_is_redacted_exactly_as_the_plain_one(
    leaky_runtime: Runtime, chunking: int
) -> None:
    plain = _plain(leaky_runtime, f"leak {chunking}")
    assert (
        plain.count("[REDACTED:api_key]") == 3 and "[REDACTED:email]" in plain and "[REDACTED:card]" in plain
    )
    streamed, raw = _stream(leaky_runtime, f"leak {chunking}")
    assert streamed == plain
    _assert_nothing_planted(raw, "the server-sent events")


def test_tool_output_echoed_in_a_stream_is_redacted(
    leaky_runtime: Runtime,
    pages: dict[str, str],
    runtime_factory: RuntimeFactory,
    leaky_model: ScriptedModelServer,
) -> None:
    pages["vault"] = f"owner {PLANTED['email']} key {PLANTED['api_key']} card {PLANTED['card']}"
    runtime = runtime_factory(
        llm_endpoint=leaky_model.base_url, http_allow_loopback=True, http_allowed_hosts=["127.0.0.1"]
    )
    question = f"fetch {pages['base']}/vault"
    streamed, raw = _stream(runtime, question)
    assert "[REDACTED:api_key]" in streamed and streamed == _plain(runtime, question)
    _assert_nothing_planted(raw, "the server-sent events")


def test_block_mode_ends_the_stream_with_an_error_event_and_never_sends_the_value(
    runtime_factory: RuntimeFactory, leaky_model: ScriptedModelServer
) -> None:
    runtime = runtime_factory(llm_endpoint=leaky_model.base_url, output_leakage="block")
    status, events = _events(runtime, "leak 0")
    assert status == 200, "text before the key was already on its way"
    *chunks, last = [json.loads(event) for event in events if event != "[DONE]"]
    assert "[DONE]" not in events, "a refused stream does not end as a complete one"
    assert last == {
        "error": {
            "code": "output_blocked",
            "message": "the answer was withheld: it contained sensitive data (api_key)",
        }
    }
    sent = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert LEAKY_ANSWER.startswith(sent) and len(sent) <= LEAKY_ANSWER.index(PLANTED["api_key"])
    _assert_nothing_planted("\n".join(events), "the server-sent events")

    client = openai.OpenAI(base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "leak 0"}], stream=True
    )
    with pytest.raises(openai.APIError, match="withheld"):
        for _ in stream:
            pass


def test_history_written_from_a_streamed_answer_is_redacted(
    leaky_runtime: Runtime, leaky_model: ScriptedModelServer, tmp_path: Path
) -> None:
    """The API's streams are stateless; a program streaming a conversation through the runner keeps history."""
    settings = leaky_runtime.settings.model_copy(update={"sqlite_path": str(tmp_path / "history.db")})
    app = create_app(settings, registry=make_registry())

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        services = await app.state.lifecycle.get()
        try:
            alice = Caller("alice")
            options = RunOptions(caller=alice, conversation_id="conv-1")
            pieces: list[str] = []
            stream = services.runner.stream(
                services.catalog.get("assistant"), [{"role": "user", "content": "leak 1"}], options
            )
            async for event in stream:
                pieces.append(event.answer if isinstance(event, RunResult) else event.text)
            history = await services.conversations.history(alice.owner, "conv-1", limit=10)
            return "".join(pieces[:-1]), [*history, {"answer": pieces[-1]}]
        finally:
            await app.state.lifecycle.close()

    streamed, history = asyncio.run(scenario())
    assert history[-2] == {"role": "assistant", "content": streamed}, "history holds what was streamed"
    assert history[-1] == {"answer": streamed}
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("history.db*"))
    _assert_nothing_planted(json.dumps(history) + stored.decode(errors="replace"), "stored history")


def test_block_mode_refuses_in_band_when_the_answer_opens_with_the_value(
    runtime_factory: RuntimeFactory, leaky_model: ScriptedModelServer
) -> None:
    """The response starts as soon as the model answers (its headers overlap the held-back window), so even
    a value in the first words is refused in the stream, before any of its text is sent."""
    runtime = runtime_factory(llm_endpoint=leaky_model.base_url, output_leakage="block")
    status, data = _events(runtime, "key first")
    events = [json.loads(event) for event in data]
    assert status == 200 and "[DONE]" not in data
    assert [event.get("error", {}).get("code") for event in events] == [None, "output_blocked"]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_a_secret_split_between_two_model_calls_of_one_run_is_redacted(
    runtime_factory: RuntimeFactory,
) -> None:
    """The caller reads the words before a tool call and the answer after it as one text: a key whose first
    half ends the one and whose second half begins the other is still a key."""
    key = PLANTED["api_key"]
    rules = [
        Rule(
            pattern="^split$",
            reply=f"The key is {key[:14]}",
            tool_calls=calls("calculator", {"expression": "1+1"}),
        ),
        Rule(pattern=".*", on="tool", reply=f"{key[14:]} (that was it).", chunk_sizes=(3,)),
    ]
    with ScriptedModelServer(Script(rules)) as model:
        runtime = runtime_factory(llm_endpoint=model.base_url)
        streamed, raw = _stream(runtime, "split")
    assert streamed == "The key is [REDACTED:api_key] (that was it)."
    _assert_nothing_planted(raw, "the stream")
