"""The hot routes' middleware answers exactly as FastAPI's routing does, for every kind of request.

Differential: the same requests go to a runtime with the middleware and to one without it (FastAPI's own
routing, dependencies, validation and error handlers), and the answers must match - statuses, error bodies,
the headers callers act on, and the bodies once the per-request values (ids, timestamps, latencies) are
set aside. The middleware itself is then checked where a real client cannot easily reach: it does serve the
well-formed requests, under a ``root_path``, and it stays silent for a client that left.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import ADMIN_KEY, USER_KEY, Runtime, RuntimeFactory

from agent_runtime.api import hot_routes
from agent_runtime.api.hot_routes import HotRoutes

CHAT = "/v1/chat/completions"
INVOKE = "/v1/agents/assistant/invoke"
JSON = {"Content-Type": "application/json"}

CASES: dict[str, tuple[str, Any, dict[str, str]]] = {
    "chat": (CHAT, {"model": "assistant", "messages": [{"role": "user", "content": "hello"}]}, {}),
    "chat, content parts and ignored sampling": (
        CHAT,
        {
            "model": "assistant",
            "temperature": 0.2,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        },
        {},
    ),
    "chat with a tool call": (
        CHAT,
        {"model": "assistant", "messages": [{"role": "user", "content": "calc 6*7"}]},
        {},
    ),
    "chat, unknown agent": (CHAT, {"model": "nobody", "messages": [{"role": "user", "content": "hi"}]}, {}),
    "chat, failing model": (
        CHAT,
        {"model": "assistant", "messages": [{"role": "user", "content": "fail"}]},
        {},
    ),
    "chat, tool message": (CHAT, {"model": "assistant", "messages": [{"role": "tool", "content": "x"}]}, {}),
    "chat, no messages": (CHAT, {"model": "assistant", "messages": []}, {}),
    "chat, messages missing": (CHAT, {"model": "assistant"}, {}),
    "chat, a list body": (CHAT, [1, 2], {}),
    "chat, a string body": (CHAT, "hello", {}),
    "chat, oversized prompt": (
        CHAT,
        {"model": "assistant", "messages": [{"role": "user", "content": "x" * 40_000}]},
        {},
    ),
    "invoke": (INVOKE, {"input": "hello"}, {}),
    "invoke, a conversation": (INVOKE, {"input": "hello", "conversation_id": "hot-1"}, {}),
    "invoke, tools": (INVOKE, {"input": "calc 2+3"}, {}),
    "invoke, input and messages": (
        INVOKE,
        {"input": "a", "messages": [{"role": "user", "content": "b"}]},
        {},
    ),
    "invoke, unknown field": (INVOKE, {"input": "a", "surprise": 1}, {}),
    "invoke, bad conversation id": (INVOKE, {"input": "a", "conversation_id": "no spaces"}, {}),
    "invoke, unknown agent": ("/v1/agents/nobody/invoke", {"input": "hi"}, {}),
    "invoke, a nested path": ("/v1/agents/assistant/x/invoke", {"input": "hi"}, {}),
    "invoke, an empty agent": ("/v1/agents//invoke", {"input": "hi"}, {}),
    "invoke, no credentials": (INVOKE, {"input": "hi"}, {"Authorization": ""}),
    "invoke, a wrong key": (INVOKE, {"input": "hi"}, {"Authorization": "Bearer not-a-key-0123456789"}),
    "invoke, basic auth": (INVOKE, {"input": "hi"}, {"Authorization": "Basic dXNlcjpwYXNz"}),
    "invoke, the api-key header": (INVOKE, {"input": "hi"}, {"Authorization": "", "api-key": ADMIN_KEY}),
    "invoke, an idempotency key": (INVOKE, {"input": "hi"}, {"Idempotency-Key": "k-1"}),
    "invoke, a trace parent": (
        INVOKE,
        {"input": "hi"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    ),
}
RAW_CASES: dict[str, tuple[str, bytes, dict[str, str]]] = {
    "not JSON": (CHAT, b"{nope", JSON),
    "empty body": (CHAT, b"", JSON),
    "no content type": (CHAT, b'{"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}', {}),
    "text/plain": (
        INVOKE,
        b'{"input": "hi"}',
        {"Content-Type": "text/plain"},
    ),
    "a +json media type with a charset": (
        INVOKE,
        b'{"input": "hi"}',
        {"Content-Type": "application/vnd.agent+json; charset=utf-8"},
    ),
    "JSON with a BOM": (INVOKE, b'\xef\xbb\xbf{"input": "hi"}', JSON),
    "invalid UTF-8": (INVOKE, b'{"input": "\xff"}', JSON),
    "a duplicate key": (INVOKE, b'{"input": "a", "input": "b"}', JSON),
}
PER_REQUEST = {"id", "created", "latency_ms", "conversation_id"}


@pytest.fixture
def pair(runtime_factory: RuntimeFactory, tmp_path: Path) -> tuple[Runtime, Runtime]:
    """A runtime with the hot routes and one with FastAPI's routing only, on the same settings (and a
    state file each, so neither sees the other's conversations)."""
    hot = runtime_factory(max_prompt_chars=30_000)
    plain = runtime_factory(
        plain_fastapi=True, max_prompt_chars=30_000, sqlite_path=str(tmp_path / "plain.db")
    )
    return hot, plain


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths the middleware answered itself."""
    paths: list[str] = []
    answer = HotRoutes._answer

    async def spy(self: HotRoutes, route: Any, body: Any, params: Any, scope: Any, receive: Any) -> Any:
        paths.append(scope["path"])
        return await answer(self, route, body, params, scope, receive)

    monkeypatch.setattr(HotRoutes, "_answer", spy)
    yield paths


def _answer(runtime: Runtime, path: str, content: bytes, headers: dict[str, str]) -> dict[str, Any]:
    sent = {"Authorization": f"Bearer {USER_KEY}"} | headers
    response = runtime.http.post(path, content=content, headers={k: v for k, v in sent.items() if v})
    try:
        body: Any = _without_per_request(response.json())
    except ValueError:
        body = response.text
    return {
        "status": response.status_code,
        "content-type": response.headers.get("content-type"),
        "www-authenticate": response.headers.get("www-authenticate"),
        "retry-after": response.headers.get("retry-after"),
        "body": body,
    }


def _without_per_request(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_per_request(v) for k, v in value.items() if k not in PER_REQUEST}
    if isinstance(value, list):
        return [_without_per_request(item) for item in value]
    return value


@pytest.mark.parametrize("case", list(CASES))
def test_a_request_is_answered_as_fastapi_answers_it(pair: tuple[Runtime, Runtime], case: str) -> None:
    path, body, headers = CASES[case]
    hot, plain = pair
    content = json.dumps(body).encode()
    assert _answer(hot, path, content, JSON | headers) == _answer(plain, path, content, JSON | headers)


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_a_body_fastapi_refuses_or_reads_is_handled_alike(pair: tuple[Runtime, Runtime], case: str) -> None:
    path, content, headers = RAW_CASES[case]
    hot, plain = pair
    assert _answer(hot, path, content, headers) == _answer(plain, path, content, headers)


def test_the_well_formed_requests_are_served_by_the_middleware(runtime: Runtime, served: list[str]) -> None:
    assert runtime.invoke("assistant", "hello").status_code == 200
    chat = {"model": "assistant", "messages": [{"role": "user", "content": "hello"}]}
    assert runtime.post(CHAT, chat).status_code == 200
    assert runtime.post(CHAT, {"model": "assistant"}).status_code == 422  # FastAPI's refusal
    assert runtime.http.get("/v1/agents", headers={"Authorization": f"Bearer {USER_KEY}"}).status_code == 200
    assert served == [INVOKE, CHAT]


def test_a_streamed_chat_is_served_as_server_sent_events(runtime: Runtime, served: list[str]) -> None:
    body = {"model": "assistant", "messages": [{"role": "user", "content": "story"}], "stream": True}
    with runtime.http.stream(
        "POST", CHAT, json=body, headers={"Authorization": f"Bearer {USER_KEY}"}
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events[:-1]
        for choice in json.loads(event[len("data: ") :])["choices"]
    )
    assert text == "once upon a time there was an agent"
    assert served == [CHAT]


def test_the_hot_routes_are_matched_below_the_root_path() -> None:
    route, params = hot_routes._match(
        hot_routes._route_path({"path": "/api/v1/agents/a1/invoke", "root_path": "/api"})
    )
    assert (route, params) == (hot_routes._INVOKE, {"agent": "a1"})
    assert (
        hot_routes._match(hot_routes._route_path({"path": "/apiv1/chat/completions", "root_path": "/api"}))[0]
        is None
    )
    assert hot_routes._match(hot_routes._route_path({"path": CHAT, "root_path": ""}))[0] is hot_routes._CHAT


def test_a_client_that_leaves_before_its_body_is_sent_gets_nothing() -> None:
    reached: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        reached.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"content-type", b"application/json")],
    }
    asyncio.run(HotRoutes(app, lifecycle=None)(scope, receive, send))  # type: ignore[arg-type]
    assert reached == []
