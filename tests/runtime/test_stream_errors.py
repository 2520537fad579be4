"""What a caller of the OpenAI-compatible route gets when the answer fails: a model answer of the wrong shape is
the model's fault, a 502 ``model_error`` (in a stream, the in-band error event, then the end); a bug in the
runtime mid-stream ends the stream with an ``internal_error`` event, its traceback logged once and never
sent. Either way the stream ends as the runtime decided, not with a connection cut without a word."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from raw_model import Answer, RawModel, chunk, tool_chunk
from runtime_helpers import USER_KEY, Runtime, RuntimeFactory

from agent_runtime.governance.guardrails import OutputStream

CHAT = {"model": "restricted", "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"Authorization": f"Bearer {USER_KEY}"}
MALFORMED = {"code": "model_error", "message": "the model endpoint answered with a malformed response"}

WRONG_TYPES: dict[str, Answer] = {
    "text that is a number, first": [chunk(123), "[DONE]"],
    "text that is a number, after text": [chunk("Hello, "), chunk("world. "), chunk(123), "[DONE]"],
    "text that is a list": [chunk(["Hello"]), "[DONE]"],
    "tool-call arguments that are an object": [
        tool_chunk({"expression": "1+1"}, "c1", "calculator"),
        chunk(finish="tool_calls"),
        "[DONE]",
    ],
    "a finish reason that is a number": [chunk("Hello, "), chunk("world. "), chunk(finish=5), "[DONE]"],
}


@pytest.fixture
def answers(runtime_factory: RuntimeFactory) -> Iterator[tuple[dict[str, Any], Runtime]]:
    """What the model answers (``answers["stream"]``, ``answers["plain"]``), and a runtime that asks it."""
    answers: dict[str, Any] = {}
    model = RawModel(lambda body: answers["stream" if body.get("stream") else "plain"])
    yield answers, runtime_factory(llm_endpoint=model.url)
    model.close()


def _streamed(runtime: Runtime) -> tuple[int, list[str]]:
    """The status and the ``data`` of each event of a streamed chat (a refusal's body as one)."""
    with runtime.http.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=HEADERS
    ) as r:
        text = r.read().decode()
    if r.status_code != 200:
        return r.status_code, [text]
    return r.status_code, [block.removeprefix("data: ") for block in text.split("\n\n") if block]


@pytest.mark.parametrize("answer", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_streamed_answer_of_the_wrong_type_is_a_model_error(answers: Any, answer: Answer) -> None:
    """Before the response began, a 502; after, the error event ends the stream (no ``[DONE]``)."""
    script, runtime = answers
    script["stream"] = answer
    status, events = _streamed(runtime)
    assert json.loads(events[-1]) == {"error": MALFORMED}, events
    assert status == 502 or (status == 200 and "[DONE]" not in events)


def test_a_plain_answer_of_the_wrong_type_is_a_model_error(answers: Any) -> None:
    script, runtime = answers
    script["plain"] = {"choices": [{"index": 0, "message": {"content": 123}, "finish_reason": "stop"}]}
    response = runtime.post("/v1/chat/completions", CHAT)
    assert (response.status_code, response.json()) == (502, {"error": MALFORMED})


def test_a_bug_mid_stream_ends_it_with_an_internal_error_logged_once(
    answers: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    script, runtime = answers
    script["stream"] = [chunk("Hello, "), chunk("world. "), chunk("BUG "), chunk("never sent"), "[DONE]"]
    feed = OutputStream.feed

    def buggy(self: OutputStream, piece: str) -> str:
        if piece == "BUG ":
            raise RuntimeError("an internal detail the caller must not see")
        return feed(self, piece)

    monkeypatch.setattr(OutputStream, "feed", buggy)
    caplog.set_level(logging.ERROR)
    try:
        status, events = _streamed(runtime)
    except httpx.RemoteProtocolError as cut:
        pytest.fail(f"the stream was cut without an error event: {cut}")
    assert status == 200 and "[DONE]" not in events
    assert json.loads(events[-1]) == {
        "error": {
            "code": "internal_error",
            "message": "internal error; the operators have the details in the log",
        }
    }
    assert not any("internal detail" in event for event in events)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in errors] == ["unhandled error in POST /v1/chat/completions"]
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


def test_an_answer_cut_at_the_output_cap_says_so(answers: Any) -> None:
    """A model stopped by its output cap reports ``length``: the caller is told the answer is cut short, not
    that it is complete."""
    script, runtime = answers
    script["stream"] = [chunk("Once upon a "), chunk("time", finish="length"), "[DONE]"]
    script["plain"] = {
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Once"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    plain = runtime.post("/v1/chat/completions", CHAT).json()
    assert plain["choices"][0]["finish_reason"] == "length"
    status, events = _streamed(runtime)
    assert status == 200 and events[-1] == "[DONE]"
    finishes = [json.loads(event)["choices"][0]["finish_reason"] for event in events[:-1]]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
