"""What a streamed model call is charged, and what of its end reaches the client, when the stream is not the
plain report of a finished answer, over real HTTP: the runtime served on loopback, a model endpoint that
writes every answer byte for byte (:mod:`raw_model`), the budget ledger read back from SQLite.

* A stream that fails after the model began answering spends tokens whatever the pieces were: text, or
  only pieces of a tool call (which never reach the caller, so the call is retried). Each such attempt is
  charged its hold, retries included; one that failed before answering is charged nothing.
* A stream whose body ends before its finish reason or ``[DONE]`` was cut short, however cleanly its
  connection closed: a model error (its hold charged once the answer began), never an answer that ends in
  ``stop`` and ``[DONE]`` at whatever usage came early.
* Usage counts from the final report only, and never below one token per chunk that carried the answer.
* Only OpenAI's four finish reasons reach the client; any other is ``stop``, and a provider's own reasons
  for a cut or a blocked answer stay ``length`` and ``content_filter``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from canned_bedrock import CannedBedrock
from raw_model import Answer, RawModel, chunk, completion, tool_chunk, usage_chunk
from runtime_helpers import USER_KEY, Runtime, RuntimeFactory
from token_ledger import TokenLedger

from agent_runtime.llm import Completion, TextDelta
from agent_runtime.llm_bedrock import BedrockModel

BUDGET = [{"name": "tokens", "scope": "caller", "match": "*", "window_seconds": 86400, "tokens": 10**7}]
OUTPUT_CAP = 350
CHAT = {"model": "restricted", "messages": [{"role": "user", "content": "add them"}]}
REPORTED = {"prompt_tokens": 50, "completion_tokens": 60, "total_tokens": 110}
WORDS = 40
EARLY_USAGE = {"prompt_tokens": 30, "completion_tokens": 0, "total_tokens": 30}
"""Usage as servers that report it on every chunk send it first: the prompt's alone."""
ARGUMENTS = '{"expression": "' + "1+" * 150 + '1"}'
CALL: list[dict[str, Any] | str | bytes] = [
    tool_chunk("", "c1", "calculator"),
    *(tool_chunk(ARGUMENTS[i : i + 2]) for i in range(0, len(ARGUMENTS), 2)),
]
"""A tool call whose arguments stream in two-character pieces: no text at all."""
ARGUMENT_PIECES = len(CALL) - 1
ERROR_EVENT = {"error": {"message": "upstream overloaded", "type": "server_error"}}
BROKEN_EVENT = b"data: {cut\n\n"
KEY = "sk-proj-Q7vN2mXk9LpR4tW8yZ1aB3cD5eF6gH"


def _words(count: int = WORDS) -> list[dict[str, Any] | str | bytes]:
    return [chunk(f"w{i} ") for i in range(count)]


def _text_stream(usage: dict[str, Any] | None = REPORTED, finish: Any = "stop") -> Answer:
    """A whole text stream: its pieces, the finish reason, the usage (when reported), ``[DONE]``."""
    tail = [usage_chunk(**usage)] if usage is not None else []
    return [chunk(""), *_words(), chunk(finish=finish), *tail, "[DONE]"]


AFTER_TOOL = [chunk("The sum is 151."), chunk(finish="stop"), usage_chunk(**REPORTED), "[DONE]"]
"""The model's answer once the calculator ran."""


class Endpoint:
    """A model endpoint answering each first call of a run with the next of ``answers`` (the last one
    repeats), and a call after a tool ran with ``after_tool``; and a runtime on it with a token budget."""

    def __init__(self, runtime_factory: RuntimeFactory, **settings: Any) -> None:
        self.answers: list[Answer] = []
        self.after_tool: Answer = AFTER_TOOL
        self.requests = 0
        self.model = RawModel(self._answer)
        self.runtime: Runtime = runtime_factory(
            llm_endpoint=self.model.url,
            budgets=json.dumps(BUDGET),
            max_output_tokens=OUTPUT_CAP,
            retry_base_seconds=0.01,
            breaker_failure_threshold=100,
            **settings,
        )
        self.ledger = TokenLedger(self.runtime.settings.sqlite_path)

    def _answer(self, body: dict[str, Any]) -> Answer:
        if any(_is_tool_result(message) for message in body["messages"]):
            return self.after_tool
        self.requests += 1
        return self.answers[min(self.requests, len(self.answers)) - 1]

    def stream(self) -> tuple[int, str]:
        """A streamed chat: its status and body."""
        with self.runtime.http.stream(
            "POST",
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"Authorization": f"Bearer {USER_KEY}"},
        ) as response:
            return response.status_code, response.read().decode()

    def plain(self) -> dict[str, Any]:
        response = self.runtime.post("/v1/chat/completions", CHAT)
        assert response.status_code == 200, response.text
        return response.json()

    def charged(self, call: Callable[[], Any], *answers: Answer) -> tuple[Any, int]:
        """What ``call`` returned, answered with ``answers``, and the tokens the ledger charged for it."""
        before = self.ledger.settled()
        self.answers, self.requests = list(answers), 0
        result = call()
        return result, self.ledger.settled() - before

    def close(self) -> None:
        self.model.close()


def _is_tool_result(message: dict[str, Any]) -> bool:
    """A tool's result: OpenAI's ``tool`` message, or Anthropic's ``tool_result`` block in a user turn."""
    if message.get("role") == "tool":
        return True
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


@pytest.fixture
def endpoint(runtime_factory: RuntimeFactory) -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def start(**settings: Any) -> Endpoint:
        started.append(Endpoint(runtime_factory, **settings))
        return started[-1]

    yield start
    for one in started:
        one.close()


def _hold(setup: Endpoint, no_usage: Answer | None = None) -> int:
    """The hold of one call of the test's chat: what a whole stream whose endpoint reports no usage spends."""
    (status, body), hold = setup.charged(setup.stream, no_usage or _text_stream(usage=None))
    assert status == 200 and "[DONE]" in body, body
    assert hold > OUTPUT_CAP, "the prompt's bound and the output cap"
    return hold


def _choices(body: str) -> list[dict[str, Any]]:
    """The choices of a streamed response's chunks."""
    return [
        choice
        for block in body.split("\n\n")
        if block.startswith("data: {")
        for choice in json.loads(block.removeprefix("data: ")).get("choices") or ()
    ]


def _finish_reasons(body: str) -> list[Any]:
    """The finish reasons a streamed response carried (``null`` ones left out)."""
    return [choice["finish_reason"] for choice in _choices(body) if choice["finish_reason"] is not None]


def _text(body: str) -> str:
    """The answer a streamed response carried."""
    return "".join(choice["delta"].get("content") or "" for choice in _choices(body))


# A stream that fails after the model began answering with only pieces of a tool call.

TOOL_CALL_FAILURES: dict[str, Answer] = {
    "an error event": [*CALL, ERROR_EVENT],
    "a broken event": [*CALL, BROKEN_EVENT],
    "a body that ends": CALL,
}


@pytest.mark.parametrize("answer", TOOL_CALL_FAILURES.values(), ids=TOOL_CALL_FAILURES.keys())
def test_a_stream_failing_after_only_tool_call_pieces_is_charged_its_hold(
    endpoint: Callable[..., Endpoint], answer: Answer
) -> None:
    setup = endpoint(llm_max_retries=0)
    hold = _hold(setup)
    (status, body), charged = setup.charged(setup.stream, answer)
    assert status == 502 and "model_error" in body, body
    assert setup.requests == 1
    assert charged == hold, "the model wrote the arguments: the worst case, as after a piece of text"


@pytest.mark.parametrize(
    "answer", [[*CALL, BROKEN_EVENT], CALL], ids=["a broken event each time", "a body that ends each time"]
)
def test_every_attempt_failing_after_tool_call_pieces_is_charged_its_hold(
    endpoint: Callable[..., Endpoint], answer: Answer
) -> None:
    setup = endpoint(llm_max_retries=2)
    hold = _hold(setup)
    (status, body), charged = setup.charged(setup.stream, answer)
    assert status == 502 and "model_error" in body, body
    assert setup.requests == 3, "retried: no text had reached the caller"
    assert charged == 3 * hold


def test_a_retry_that_succeeds_is_charged_with_each_attempt_that_answered_before_it(
    endpoint: Callable[..., Endpoint],
) -> None:
    """The first attempt fails before answering (nothing spent), the second after a tool call's pieces
    (its hold), the third answers: its reported usage."""
    setup = endpoint(llm_max_retries=2)
    hold = _hold(setup)
    failed_at_once = (503, {"error": {"message": "overloaded"}})
    (status, body), charged = setup.charged(
        setup.stream, failed_at_once, [*CALL, BROKEN_EVENT], _text_stream()
    )
    assert status == 200 and "[DONE]" in body, body
    assert setup.requests == 3
    assert charged == hold + REPORTED["total_tokens"]


def test_a_plain_call_after_failed_streams_is_charged_its_usage_alone(
    endpoint: Callable[..., Endpoint],
) -> None:
    """A failed stream's holds are its own call's: the next call of the caller settles at its own usage."""
    setup = endpoint(llm_max_retries=0)
    hold = _hold(setup)
    _, failed = setup.charged(setup.stream, [*CALL, ERROR_EVENT])
    answer, charged = setup.charged(setup.plain, completion("ok", **REPORTED))
    assert (failed, charged) == (hold, REPORTED["total_tokens"]), answer


# A stream cut short: its body ends cleanly, before its finish reason or its [DONE].

CUTS: dict[str, Callable[[list[Any]], list[Any]]] = {
    "after the first piece": lambda whole: whole[:2],
    "mid-answer": lambda whole: whole[: 1 + WORDS // 2],
    "after the last piece": lambda whole: whole[: 1 + WORDS],
    "after the finish reason": lambda whole: whole[: 2 + WORDS],
    "after the usage": lambda whole: whole[: 3 + WORDS],
}


@pytest.mark.parametrize("early_usage", [False, True], ids=["no early usage", "usage on the first chunk"])
@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_a_stream_cut_after_the_answer_began_is_a_model_error_charged_its_hold(
    endpoint: Callable[..., Endpoint], cut: Callable[[list[Any]], list[Any]], early_usage: bool
) -> None:
    setup = endpoint(llm_max_retries=0)
    hold = _hold(setup)
    whole = list(_text_stream())
    if early_usage:
        whole[0] = chunk("", usage=EARLY_USAGE)
    (status, body), charged = setup.charged(setup.stream, cut(whole))
    assert status == 200, "the answer had begun: the error travels in the stream"
    assert "model_error" in body and "[DONE]" not in body, body
    assert _finish_reasons(body) == [], "no finish reason for an answer that did not finish"
    assert charged == hold


@pytest.mark.parametrize("early_usage", [False, True], ids=["no early usage", "usage on the first chunk"])
def test_a_stream_cut_before_any_piece_is_a_model_error_charged_nothing(
    endpoint: Callable[..., Endpoint], early_usage: bool
) -> None:
    setup = endpoint(llm_max_retries=0)
    _hold(setup)
    first = chunk("", usage=EARLY_USAGE) if early_usage else chunk("")
    (status, body), charged = setup.charged(setup.stream, [first])
    assert status == 502 and "model_error" in body, body
    assert charged == 0, "failed before it answered"


def test_a_tool_call_cut_before_its_finish_is_retried_not_run(endpoint: Callable[..., Endpoint]) -> None:
    """Cut arguments are not a call to run: the attempt fails, is charged its hold, and the retry answers."""
    setup = endpoint(llm_max_retries=1)
    hold = _hold(setup)
    (status, body), charged = setup.charged(setup.stream, CALL, _text_stream())
    assert status == 200 and "[DONE]" in body, body
    assert setup.requests == 2 and _text(body) == "".join(f"w{i} " for i in range(WORDS)), "no tool ran"
    assert charged == hold + REPORTED["total_tokens"]


# Usage that came early, or that is less than what was visibly streamed.


def test_usage_reported_before_the_finish_is_not_the_calls_usage(endpoint: Callable[..., Endpoint]) -> None:
    """Usage on the first chunk and no final report: not reported, so the hold (not the prompt's 30)."""
    setup = endpoint(llm_max_retries=0)
    hold = _hold(setup)
    stream = [chunk("", usage=EARLY_USAGE), *_words(), chunk(finish="stop"), "[DONE]"]
    (status, body), charged = setup.charged(setup.stream, stream)
    assert status == 200 and "[DONE]" in body, body
    assert charged == hold


def test_usage_reported_on_every_chunk_is_charged_at_its_final_report(
    endpoint: Callable[..., Endpoint],
) -> None:
    setup = endpoint(llm_max_retries=0)
    running = [
        chunk(f"w{i} ", usage={"prompt_tokens": 50, "completion_tokens": i, "total_tokens": 50 + i})
        for i in range(WORDS)
    ]
    final = {"prompt_tokens": 50, "completion_tokens": WORDS, "total_tokens": 50 + WORDS}
    stream = [*running, chunk(finish="stop", usage=final), usage_chunk(**final), "[DONE]"]
    (status, body), charged = setup.charged(setup.stream, stream)
    assert status == 200 and "[DONE]" in body, body
    assert charged == 50 + WORDS


UNDERSTATED = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def test_reported_output_below_the_text_pieces_streamed_is_raised_to_them(
    endpoint: Callable[..., Endpoint],
) -> None:
    setup = endpoint(llm_max_retries=0)
    (status, body), charged = setup.charged(setup.stream, _text_stream(usage=UNDERSTATED))
    assert status == 200 and "[DONE]" in body, body
    assert charged == UNDERSTATED["prompt_tokens"] + WORDS, "a token at least per piece of text"


def test_reported_output_below_the_argument_pieces_streamed_is_raised_to_them(
    endpoint: Callable[..., Endpoint],
) -> None:
    setup = endpoint(llm_max_retries=0)
    call = [*CALL, chunk(finish="tool_calls"), usage_chunk(**UNDERSTATED), "[DONE]"]
    (status, body), charged = setup.charged(setup.stream, call)
    assert status == 200 and _text(body) == "The sum is 151.", body
    first = UNDERSTATED["prompt_tokens"] + ARGUMENT_PIECES
    assert charged == first + REPORTED["total_tokens"], "a token at least per piece of the arguments"


# Finish reasons.

NONSTANDARD = [
    KEY,
    "function_call",
    "eos_token",
    "end_turn",
    "max_tokens",
    "null",
    "STOP",
    "Length",
    "stop ",
    "停止",
    "x" * 300,
]
"""Reasons OpenAI's API does not define: a secret, other APIs' and servers' words, near misses, a long one."""


@pytest.mark.parametrize("reason", NONSTANDARD, ids=["a key", *NONSTANDARD[1:-1], "a long string"])
def test_a_finish_reason_openai_does_not_define_reaches_the_client_as_stop(
    endpoint: Callable[..., Endpoint], reason: str
) -> None:
    setup = endpoint(llm_max_retries=0)
    setup.answers = [{**completion("ok", **REPORTED), "choices": [_choice("ok", reason)]}]
    assert setup.plain()["choices"][0]["finish_reason"] == "stop"
    setup.answers, setup.requests = [_text_stream(finish=reason)], 0
    status, body = setup.stream()
    assert status == 200 and "[DONE]" in body, body
    assert _finish_reasons(body) == ["stop"] and json.dumps(reason) not in body


@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_a_cut_or_filtered_answer_keeps_its_finish_reason(
    endpoint: Callable[..., Endpoint], reason: str
) -> None:
    setup = endpoint(llm_max_retries=0)
    setup.answers = [{**completion("ok", **REPORTED), "choices": [_choice("ok", reason)]}]
    assert setup.plain()["choices"][0]["finish_reason"] == reason
    setup.answers, setup.requests = [_text_stream(finish=reason)], 0
    status, body = setup.stream()
    assert status == 200 and _finish_reasons(body) == [reason], body


def _choice(content: str, finish_reason: Any) -> dict[str, Any]:
    return {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}


# Anthropic's Messages API: the same gaps, the same answers.


def _message_start(usage: dict[str, Any]) -> dict[str, Any]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": []}
    return {"type": "message_start", "message": {**message, "stop_reason": None, "usage": usage}}


def _text_block(*texts: str) -> list[dict[str, Any] | str | bytes]:
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in texts
    ]
    return [start, *deltas, {"type": "content_block_stop", "index": 0}]


def _tool_block() -> list[dict[str, Any] | str | bytes]:
    use = {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {}}
    start = {"type": "content_block_start", "index": 0, "content_block": use}
    pieces = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}
        for p in ["", *(ARGUMENTS[i : i + 2] for i in range(0, len(ARGUMENTS), 2))]
    ]
    return [start, *pieces]


def _message_end(stop_reason: Any, output_tokens: int | None) -> list[dict[str, Any] | str | bytes]:
    usage = {"output_tokens": output_tokens} if output_tokens is not None else {}
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage,
    }
    return [delta, {"type": "message_stop"}]


ANTHROPIC_WORDS = [f"w{i} " for i in range(WORDS)]
ANTHROPIC_INPUT = {"input_tokens": 30, "output_tokens": 1}


def _anthropic(endpoint: Callable[..., Endpoint]) -> tuple[Endpoint, int]:
    """A runtime on Anthropic's API, and the hold of one call (a whole stream reporting no usage)."""
    setup = endpoint(llm_provider="anthropic", llm_max_retries=0)
    setup.after_tool = [_message_start({}), *_text_block("The sum is 151."), *_message_end("end_turn", 5)]
    whole = [_message_start({}), *_text_block(*ANTHROPIC_WORDS), *_message_end("end_turn", None)]
    return setup, _hold(setup, whole)


def test_an_anthropic_stream_ending_without_its_stop_reason_is_a_model_error_charged_its_hold(
    endpoint: Callable[..., Endpoint],
) -> None:
    setup, hold = _anthropic(endpoint)
    stream = [_message_start(ANTHROPIC_INPUT), *_text_block(*ANTHROPIC_WORDS), {"type": "message_stop"}]
    (status, body), charged = setup.charged(setup.stream, stream)
    assert status == 200 and "model_error" in body and "[DONE]" not in body, body
    assert charged == hold, "the output usage, which message_delta carries, is not known"


def test_anthropic_output_below_the_pieces_streamed_is_raised_to_them(
    endpoint: Callable[..., Endpoint],
) -> None:
    setup, _ = _anthropic(endpoint)
    stream = [_message_start(ANTHROPIC_INPUT), *_text_block(*ANTHROPIC_WORDS), *_message_end("end_turn", 1)]
    (status, body), charged = setup.charged(setup.stream, stream)
    assert status == 200 and "[DONE]" in body, body
    assert charged == ANTHROPIC_INPUT["input_tokens"] + WORDS


def test_an_anthropic_stream_failing_after_only_tool_input_is_charged_its_hold(
    endpoint: Callable[..., Endpoint],
) -> None:
    setup, hold = _anthropic(endpoint)
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    (status, body), charged = setup.charged(
        setup.stream, [_message_start(ANTHROPIC_INPUT), *_tool_block(), error]
    )
    assert status == 502 and "model_error" in body, body
    assert charged == hold


ANTHROPIC_REASONS = {
    "stop_sequence": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
    "max_tokens": "length",
    "pause_turn": "stop",
    KEY: "stop",
}


@pytest.mark.parametrize(
    ("reason", "expected"), ANTHROPIC_REASONS.items(), ids=[*list(ANTHROPIC_REASONS)[:-1], "a key"]
)
def test_an_anthropic_stop_reason_reaches_the_client_as_openais(
    endpoint: Callable[..., Endpoint], reason: str, expected: str
) -> None:
    setup = endpoint(llm_provider="anthropic", llm_max_retries=0)
    message = _message_start(ANTHROPIC_INPUT)["message"]
    setup.answers = [{**message, "content": [{"type": "text", "text": "ok"}], "stop_reason": reason}]
    assert setup.plain()["choices"][0]["finish_reason"] == expected
    stream = [_message_start(ANTHROPIC_INPUT), *_text_block("ok"), *_message_end(reason, 1)]
    setup.answers, setup.requests = [stream], 0
    status, body = setup.stream()
    assert status == 200 and _finish_reasons(body) == [expected] and KEY not in body, body


# Bedrock's Converse API (a canned client: the local Bedrock Runtime sends only what the service does).


def _bedrock(client: CannedBedrock) -> tuple[Completion, Completion]:
    """The completion of a plain call and of a streamed one to ``client``."""

    async def calls() -> tuple[Completion, Completion]:
        model = BedrockModel(client)
        messages = [{"role": "user", "content": "hi"}]
        try:
            plain = await model.complete("m", messages)
            *pieces, streamed = [event async for event in model.stream("m", messages)]
            assert all(isinstance(piece, TextDelta) for piece in pieces)
            assert isinstance(streamed, Completion)
            return plain, streamed
        finally:
            await model.close()

    return asyncio.run(calls())


def test_a_bedrock_stop_reason_it_does_not_define_is_stop_and_understated_output_is_raised() -> None:
    usage = {"inputTokens": 30, "outputTokens": 1, "totalTokens": 31}
    message = {"role": "assistant", "content": [{"text": "ok"}]}
    deltas = [{"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": w}}} for w in ANTHROPIC_WORDS]
    events = [
        {"messageStart": {"role": "assistant"}},
        *deltas,
        {"messageStop": {"stopReason": KEY}},
        {"metadata": {"usage": usage}},
    ]
    plain, streamed = _bedrock(
        CannedBedrock({"output": {"message": message}, "stopReason": KEY, "usage": usage}, events)
    )
    assert (plain.finish_reason, streamed.finish_reason) == ("stop", "stop")
    assert plain.usage.total_tokens == 31, "a plain answer's usage is its report"
    assert (streamed.usage.completion_tokens, streamed.usage.total_tokens) == (WORDS, 30 + WORDS)
