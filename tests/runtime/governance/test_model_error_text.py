"""A model endpoint's error text reaches the caller redacted like an answer: an endpoint (or a proxy before
it) that echoes the runtime's own model key or a user's e-mail address shows neither, whether the error
comes as an HTTP status or mid-stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from raw_model import RawModel, chunk
from runtime_helpers import USER_KEY, Runtime, RuntimeFactory

MODEL_KEY = "sk-live-RUNTIME0wnKey1234567890abcd"
ECHO = {"error": {"message": f"invalid credentials: got api key {MODEL_KEY} for ada.lovelace@example.com"}}
CHAT = {"model": "restricted", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def runtime(runtime_factory: RuntimeFactory) -> Iterator[Runtime]:
    model = RawModel(lambda body: [chunk("Hello, "), ECHO] if body.get("stream") else (401, ECHO))
    yield runtime_factory(llm_endpoint=model.url, llm_auth="api_key", llm_api_key=MODEL_KEY)
    model.close()


@pytest.mark.parametrize("stream", [False, True])
def test_the_endpoints_error_text_reaches_the_caller_redacted(runtime: Runtime, stream: bool) -> None:
    body: dict[str, Any] = {**CHAT, "stream": stream}
    with runtime.http.stream(
        "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {USER_KEY}"}
    ) as response:
        text = response.read().decode()
    assert "invalid credentials" in text and "model_error" in text, text
    assert MODEL_KEY not in text and "ada.lovelace" not in text, text
    assert "[REDACTED:" in text
