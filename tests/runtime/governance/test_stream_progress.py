"""A streamed model call times out when its answer stops coming, not when its text does: a model writing a
long tool call sends no text for a while and is making progress; one sending only keep-alives, empty deltas or
reasoning the runtime does not read is not, and times out after ``llm_timeout_seconds`` as before."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from raw_model import Answer, RawModel, chunk, tool_chunk
from runtime_helpers import USER_KEY, Runtime, RuntimeFactory

TIMEOUT = 0.5
PAUSE = 0.1
"""Between two events of a stream: well inside the timeout."""
CHAT = {"model": "restricted", "messages": [{"role": "user", "content": "add"}], "stream": True}
KEEPALIVE = b": keep-alive\n\n"
REASONING = {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}, "finish_reason": None}]}
FOREVER = 200
"""Events of a stream that would last 20 s: far past the timeout."""
CALL = tool_chunk("", "c1", "calculator")


@pytest.fixture
def model(runtime_factory: RuntimeFactory) -> Iterator[tuple[dict[str, Answer], Runtime]]:
    """What the model streams to the first call (``script["call"]``), and a runtime that asks it."""
    script: dict[str, Answer] = {}

    def answer(body: dict[str, Any]) -> Answer:
        if any(message.get("role") == "tool" for message in body["messages"]):
            return [chunk("The sum is 13."), chunk(finish="stop"), "[DONE]"]
        return script["call"]

    raw = RawModel(answer, pause=PAUSE)
    yield script, runtime_factory(llm_endpoint=raw.url, llm_timeout_seconds=TIMEOUT)
    raw.close()


def _chat(runtime: Runtime) -> tuple[int, str, float]:
    started = time.monotonic()
    with runtime.http.stream(
        "POST", "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {USER_KEY}"}
    ) as response:
        text = response.read().decode()
    return response.status_code, text, time.monotonic() - started


def test_a_tool_call_written_for_longer_than_the_timeout_is_not_cut_off(model: Any) -> None:
    script, runtime = model
    pieces = ['{"expression": "', *["1+"] * 12, '1"}']  # 1.5 s of arguments, a piece every 0.1 s
    script["call"] = [CALL, *(tool_chunk(piece) for piece in pieces), chunk(finish="tool_calls"), "[DONE]"]
    status, text, seconds = _chat(runtime)
    assert status == 200 and "[DONE]" in text, text
    streamed = "".join(
        json.loads(block.removeprefix("data: "))["choices"][0]["delta"].get("content", "")
        for block in text.split("\n\n")
        if block.startswith("data: {") and '"choices":[{' in block
    )
    assert streamed == "The sum is 13."
    assert seconds > 2 * TIMEOUT, "the call outlived the timeout"


STALLED: dict[str, Answer] = {
    "keep-alives": [KEEPALIVE] * FOREVER,
    "empty deltas": [chunk()] * FOREVER,
    "reasoning it does not read": [REASONING] * FOREVER,
    "a tool call, then keep-alives": [CALL, tool_chunk('{"expression": '), *[KEEPALIVE] * FOREVER],
}


@pytest.mark.parametrize("answer", STALLED.values(), ids=STALLED.keys())
def test_a_stream_that_stops_adding_to_the_answer_times_out(model: Any, answer: Answer) -> None:
    script, runtime = model
    script["call"] = answer
    status, text, seconds = _chat(runtime)
    assert (status, json.loads(text)) == (
        502,
        {"error": {"code": "model_error", "message": "the model call timed out"}},
    )
    assert seconds < 4 * TIMEOUT, "timed out once the answer stopped coming, not at the run's deadline"
