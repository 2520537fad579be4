"""What a model call is charged when its usage is not the plain report of a finished call: a stream the
caller leaves before its end, an endpoint that reports no usage or less than the call certainly spent, usage
that is partial or nonsense. A call whose usage is not known spends its hold (its worst case); reported usage
is held to sense."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from raw_model import Answer, RawModel, chunk, completion, usage_chunk
from runtime_helpers import USER_KEY, Runtime, RuntimeFactory
from token_ledger import TokenLedger

WORDS = 40
REPORTED = {"prompt_tokens": 50, "completion_tokens": 350, "total_tokens": 400}
BUDGET = [{"name": "tokens", "scope": "caller", "match": "*", "window_seconds": 86400, "tokens": 10**6}]
CHAT = {"model": "restricted", "messages": [{"role": "user", "content": "hi"}]}


def _stream(usage: dict[str, Any] | None) -> Answer:
    words: list[dict[str, Any] | str] = [chunk(f"w{i} ") for i in range(WORDS)]
    return [*words, chunk(finish="stop"), *([usage_chunk(**usage)] if usage is not None else []), "[DONE]"]


@pytest.fixture
def setup(runtime_factory: RuntimeFactory) -> Iterator[tuple[RawModel, Runtime, TokenLedger, dict[str, Any]]]:
    answers: dict[str, Any] = {"stream": _stream(REPORTED), "plain": completion("ok", **REPORTED)}
    model = RawModel(lambda body: answers["stream" if body.get("stream") else "plain"], pause=0.01)
    runtime = runtime_factory(llm_endpoint=model.url, budgets=json.dumps(BUDGET), max_output_tokens=350)
    yield model, runtime, TokenLedger(runtime.settings.sqlite_path), answers
    model.close()


def _streamed(runtime: Runtime) -> str:
    with runtime.http.stream(
        "POST",
        "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {USER_KEY}"},
    ) as response:
        return response.read().decode()


def _left_after_five_words(runtime: Runtime, ledger: TokenLedger) -> int:
    """A stream read for five pieces of text, then the connection closed; what the call held meanwhile."""
    body = json.dumps({**CHAT, "stream": True}).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: runtime\r\nAuthorization: Bearer {USER_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", runtime.server.port)) as client:
        client.sendall(request + body)
        received = b""
        while received.count(b'"content":"') < 5:
            piece = client.recv(65536)
            assert piece, f"the stream ended early: {received!r}"
            received += piece
        return ledger.held()


def test_a_finished_stream_is_charged_its_reported_usage(setup: Any) -> None:
    _, runtime, ledger, _ = setup
    assert "[DONE]" in _streamed(runtime)
    assert ledger.settled() == 400


def test_a_caller_leaving_a_stream_before_its_end_is_charged_the_hold(setup: Any) -> None:
    _, runtime, ledger, _ = setup
    hold = _left_after_five_words(runtime, ledger)
    assert hold > REPORTED["completion_tokens"], "the worst case: the prompt's bound and the output cap"
    assert ledger.settled() == hold


def test_an_endpoint_reporting_no_usage_is_charged_the_hold(setup: Any) -> None:
    _, runtime, ledger, answers = setup
    answers["stream"] = _stream(None)
    answers["plain"] = {**completion("ok"), "usage": None}
    assert "[DONE]" in _streamed(runtime)
    first = ledger.settled()
    assert first > REPORTED["completion_tokens"]
    assert runtime.post("/v1/chat/completions", CHAT).status_code == 200
    assert ledger.settled() == 2 * first


BELOW_THE_FLOOR = {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}
"""Usage of a call that read a message and wrote an answer: less than those two pieces, a token each at
least whatever the tokenizer."""


def test_usage_below_what_the_call_certainly_spent_is_charged_the_hold(setup: Any) -> None:
    """The ledger charges such a call as one reporting no usage, plain or streamed (an answer of one piece,
    so raising the output to the pieces streamed leaves it below too); a run's budget counts the same."""
    _, runtime, ledger, answers = setup
    answers["plain"] = {**completion("ok"), "usage": None}
    assert runtime.post("/v1/chat/completions", CHAT).status_code == 200
    hold = ledger.settled()
    answers["plain"] = completion("ok", **BELOW_THE_FLOOR)
    assert runtime.post("/v1/chat/completions", CHAT).json()["usage"]["total_tokens"] == 1, "as reported"
    assert ledger.settled() == 2 * hold
    answers["stream"] = [chunk("ok"), chunk(finish="stop"), usage_chunk(**BELOW_THE_FLOOR), "[DONE]"]
    assert "[DONE]" in _streamed(runtime)
    assert ledger.settled() == 3 * hold


def test_a_total_missing_from_the_usage_is_its_parts_sum(setup: Any) -> None:
    _, runtime, ledger, answers = setup
    answers["plain"] = completion("ok", prompt_tokens=50, completion_tokens=350)
    assert runtime.post("/v1/chat/completions", CHAT).json()["usage"]["total_tokens"] == 400
    assert ledger.settled() == 400


@pytest.mark.parametrize("tokens", [-900_000, 10**20])
def test_usage_that_is_nonsense_is_a_malformed_answer_that_credits_nothing(setup: Any, tokens: int) -> None:
    _, runtime, ledger, answers = setup
    nonsense = {"prompt_tokens": 50, "completion_tokens": tokens, "total_tokens": tokens}
    answers["plain"] = completion("ok", **nonsense)
    answers["stream"] = _stream(nonsense)
    refused = runtime.post("/v1/chat/completions", CHAT)
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "model_error"
    assert ledger.settled() == 0, "failed before it answered: nothing spent"
    streamed = _streamed(runtime)
    assert "model_error" in streamed and "[DONE]" not in streamed
    assert ledger.settled() > REPORTED["completion_tokens"], "cut after the answer began: the hold"
