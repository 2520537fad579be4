"""Hostile and odd requests get the runtime's JSON 4xx naming what to fix, alike on the hot routes and on
FastAPI's routing, before any model call; a bug's 500 is logged once and leaves the connection usable.

Lone surrogates, bodies FastAPI cannot parse, bodies that are not JSON or are compressed, wrong methods,
malformed idempotency keys and absurd Content-Lengths, each sent over real HTTP (or, where a server's
parser would refuse it first, straight to the ASGI app as a host that does not check it hands it over).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from runtime_helpers import AGENTS, API_KEYS, USER_KEY, Runtime, RuntimeFactory, make_registry
from starlette.types import Message

from agent_runtime.api import create_app, hot_routes
from agent_runtime.settings import Settings
from agent_runtime.testing import ScriptedModelServer

AUTH = {"Authorization": f"Bearer {USER_KEY}"}
JSON = AUTH | {"Content-Type": "application/json"}
CHAT = "/v1/chat/completions"
INVOKE = "/v1/agents/assistant/invoke"
TASKS = "/v1/agents/assistant/tasks"
HELLO = b'"messages":[{"role":"user","content":"hi"}]'


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


@pytest.fixture
def both(runtime_factory: RuntimeFactory, tmp_path: Path) -> tuple[Runtime, Runtime]:
    """A runtime with the hot routes and one with FastAPI's routing only, each with state of its own."""
    hot = runtime_factory(bus_sqlite_path=str(tmp_path / "hot-bus.db"))
    plain = runtime_factory(
        plain_fastapi=True,
        sqlite_path=str(tmp_path / "plain.db"),
        bus_sqlite_path=str(tmp_path / "plain-bus.db"),
    )
    return hot, plain


SURROGATES: dict[str, tuple[str, bytes, str]] = {
    "chat, model": (CHAT, rb'{"model":"a\ud800",' + HELLO + b"}", "model"),
    "streamed chat, model": (CHAT, rb'{"model":"a\ud800","stream":true,' + HELLO + b"}", "model"),
    "chat, metadata": (
        CHAT,
        rb'{"model":"assistant","metadata":{"task_class":"\udfff"},' + HELLO + b"}",
        "metadata.task_class",
    ),
    "chat, a content part": (
        CHAT,
        rb'{"model":"assistant","messages":[{"role":"user","content":[{"type":"text","text":"\ud800"}]}]}',
        "messages.0.content",
    ),
    "invoke, input (for the model)": (INVOKE, rb'{"input":"a\ud800"}', "input"),
    "invoke, a message (for the store)": (
        INVOKE,
        rb'{"messages":[{"role":"system","content":"x\udc00"},{"role":"user","content":"hi"}]}',
        "messages.0.content",
    ),
    "invoke, a message's name": (
        INVOKE,
        rb'{"messages":[{"role":"user","content":"hi","name":"\ud800"}]}',
        "messages.0.name",
    ),
    "invoke, task_class (constrained)": (INVOKE, rb'{"input":"hi","task_class":"a\ud800"}', "task_class"),
    "task, input": (TASKS, rb'{"input":"a\ud800"}', "input"),
    "task, callback_url": (
        TASKS,
        rb'{"input":"hi","callback_url":"https://x.example/\ud800"}',
        "callback_url",
    ),
    "approval, comment": (
        "/v1/tasks/t-1/approval",
        rb'{"decision":"approve","comment":"\ud800"}',
        "comment",
    ),
}


@pytest.mark.parametrize("case", list(SURROGATES))
def test_a_lone_surrogate_is_a_422_naming_its_field_before_any_model_call(
    both: tuple[Runtime, Runtime], model: ScriptedModelServer, case: str
) -> None:
    path, body, field = SURROGATES[case]
    for runtime in both:
        response = runtime.http.post(path, content=body, headers=JSON)
        assert response.status_code == 422, response.text
        assert error_of(response) == {
            "code": "invalid_request",
            "message": f"{field}: contains an unpaired surrogate: send valid Unicode",
            "field": field,
        }
    assert model.requests == []


def test_a_surrogate_echoed_in_an_error_is_escaped_not_a_crash(tmp_path: Path) -> None:
    # uvicorn decodes a path as UTF-8 with replacement, but a host may hand one over as it was given: Mangum
    # passes on API Gateway's rawPath, a JSON string that may hold "\ud800". The error names the agent.
    settings = Settings(
        llm_endpoint="http://127.0.0.1:9/v1",
        llm_auth="none",
        sqlite_path=str(tmp_path / "state.db"),
        agents=json.dumps(AGENTS),
        api_keys=json.dumps(API_KEYS),
    )
    app = create_app(settings, registry=make_registry())
    path = "/v1/agents/a\ud800/invoke"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in JSON.items()],
        "client": ("192.0.2.1", 4711),
        "server": ("runtime", 443),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b'{"input":"hi"}', "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def call() -> None:
        try:
            await app(scope, receive, send)
        finally:
            await app.state.lifecycle.close()

    asyncio.run(call())
    start, body = sent
    assert start["status"] == 404
    assert b"a\\ud800" in body["body"]  # JSON's escape of what UTF-8 cannot encode
    assert json.loads(body["body"]) == {
        "error": {"code": "unknown_agent", "message": "no agent named 'a\ud800'", "field": "agent"}
    }


def _exchange(connection: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and read its answer (framed by Content-Length); what came when the server hung up."""
    connection.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
        chunk = connection.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def _length(answer: bytes) -> int:
    head = answer.partition(b"\r\n\r\n")[0].lower()
    return int(head.partition(b"content-length:")[2].split(b"\r\n", 1)[0])


@pytest.fixture
def error_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog``, also holding uvicorn's error log (uvicorn's logging configuration keeps it from the root)."""
    server_log = logging.getLogger("uvicorn.error")
    server_log.addHandler(caplog.handler)
    yield caplog
    server_log.removeHandler(caplog.handler)


def test_a_bug_on_fastapis_path_is_logged_once_and_the_connection_stays_usable(
    runtime_factory: RuntimeFactory, error_log: pytest.LogCaptureFixture
) -> None:
    runtime = runtime_factory()

    async def broken() -> None:
        raise RuntimeError("boom")

    runtime.server._server.config.app.add_api_route("/broken", broken)
    with socket.create_connection((runtime.server.host, runtime.server.port), timeout=10) as connection:
        failed = _exchange(connection, b"GET /broken HTTP/1.1\r\nHost: runtime\r\n\r\n")
        after = _exchange(connection, b"GET /healthz HTTP/1.1\r\nHost: runtime\r\n\r\n")
    assert failed.startswith(b"HTTP/1.1 500 ")
    assert failed.endswith(
        b'{"error":{"code":"internal_error","message":"internal error; the operators have the details in the log"}}'
    )
    assert after.startswith(b"HTTP/1.1 200 ")
    errors = [record for record in error_log.records if record.levelno >= logging.ERROR]
    assert [(record.name, record.getMessage()) for record in errors] == [
        ("agentstage.api", "unhandled error in GET /broken")
    ]
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


UNPARSABLE: dict[str, tuple[str, bytes, str]] = {
    "invalid UTF-8": (INVOKE, b'{"input":"\xff"}', "the body is not valid UTF-8 JSON"),
    "invalid UTF-8, a FastAPI-only route": (TASKS, b'{"input":"\xff"}', "the body is not valid UTF-8 JSON"),
    "an integer of 4301 digits": (
        CHAT,
        b'{"model":"assistant",' + HELLO + b',"n":' + b"1" * 4301 + b"}",
        "the body's JSON holds a number of more than 4300 digits",
    ),
    "nesting 1000 deep": (
        CHAT,
        b'{"model":"assistant",' + HELLO + b',"n":' + b"[" * 1000 + b"]" * 1000 + b"}",
        "the body's JSON is nested too deeply",
    ),
}


@pytest.mark.parametrize("case", list(UNPARSABLE))
def test_a_body_python_cannot_parse_is_a_400_saying_why(both: tuple[Runtime, Runtime], case: str) -> None:
    path, body, message = UNPARSABLE[case]
    for runtime in both:
        response = runtime.http.post(path, content=body, headers=JSON)
        assert response.status_code == 400
        assert error_of(response) == {"code": "invalid_request", "message": message}


def test_a_compressed_body_is_a_415_naming_content_encoding(
    both: tuple[Runtime, Runtime], model: ScriptedModelServer
) -> None:
    for runtime in both:
        response = runtime.http.post(
            INVOKE, content=b'{"input":"hi"}', headers=JSON | {"Content-Encoding": "gzip"}
        )
        assert response.status_code == 415
        assert error_of(response) == {
            "code": "unsupported_media_type",
            "message": "Content-Encoding gzip is not supported: send the body uncompressed",
            "field": "Content-Encoding",
        }
        identity = runtime.http.post(
            INVOKE, content=b'{"input":"hi"}', headers=JSON | {"Content-Encoding": "Identity"}
        )
        assert identity.status_code == 200
    assert len(model.requests) == 2


@pytest.mark.parametrize(
    ("content_type", "sent"),
    [
        (None, "it was sent without one"),
        ("text/plain", "it was sent as text/plain"),
        ("application/x-www-form-urlencoded", "it was sent as application/x-www-form-urlencoded"),
        ("application/a/b+json", "it was sent as application/a/b+json"),
    ],
)
def test_a_body_not_sent_as_json_is_a_415_naming_the_content_type(
    both: tuple[Runtime, Runtime], model: ScriptedModelServer, content_type: str | None, sent: str
) -> None:
    headers = AUTH | ({"Content-Type": content_type} if content_type else {})
    for runtime in both:
        for path, body in ((INVOKE, b'{"input":"hi"}'), (CHAT, b'{"model":"assistant",' + HELLO + b"}")):
            response = runtime.http.post(path, content=body, headers=headers)
            assert response.status_code == 415, (path, response.text)
            assert error_of(response) == {
                "code": "unsupported_media_type",
                "message": f"the body must be JSON, sent with Content-Type: application/json; {sent}",
                "field": "Content-Type",
            }
    assert model.requests == []


@pytest.mark.parametrize(
    ("content_type", "parsed"),
    [
        (b"application/json", True),
        (b"Application/JSON; charset=utf-8", True),
        (b"application/vnd.agent+json", True),
        (b"application/json\xa0", True),  # str.strip, as FastAPI's email.message strips, removes it
        (b"application/a/b+json", False),  # email.message takes a type of two slashes for text/plain
        (b"text/json", False),
        (b"application/jsonp", False),
        (b"", False),
    ],
)
def test_the_hot_routes_take_a_body_as_json_exactly_when_fastapi_does(
    content_type: bytes, parsed: bool
) -> None:
    assert hot_routes._is_json({"headers": [(b"content-type", content_type)]}) is parsed


def test_a_wrong_method_is_a_405_naming_the_allowed_one(runtime: Runtime) -> None:
    for method, path, allowed in (
        ("PUT", INVOKE, "POST"),
        ("GET", CHAT, "POST"),
        ("POST", "/healthz", "GET"),
    ):
        response = runtime.http.request(method, path, headers=AUTH)
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
        assert error_of(response) == {
            "code": "method_not_allowed",
            "message": f"{method} is not allowed on {path}: use {allowed}",
        }


@pytest.mark.parametrize("key", [b"has spaces", b"k" * 5000, b"caf\xc3\xa9", b""])
def test_invoke_and_chat_refuse_a_malformed_idempotency_key_as_tasks_do(
    both: tuple[Runtime, Runtime], model: ScriptedModelServer, key: bytes
) -> None:
    for runtime in both:
        for path, body in ((INVOKE, b'{"input":"hi"}'), (CHAT, b'{"model":"assistant",' + HELLO + b"}")):
            headers = {**JSON, "Idempotency-Key": key}
            response = runtime.http.post(path, content=body, headers=headers)
            assert response.status_code == 422, (path, response.text)
            assert error_of(response) == {
                "code": "invalid_request",
                "message": "Idempotency-Key must be 1-128 printable ASCII characters without spaces",
                "field": "Idempotency-Key",
            }
    assert model.requests == []


def test_invoke_declares_the_idempotency_key_as_tasks_do() -> None:
    paths = create_app(Settings(agents="[]")).openapi()["paths"]

    def header(path: str) -> dict[str, object]:
        [parameter] = [p for p in paths[path]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
        return parameter

    invoke = header("/v1/agents/{agent}/invoke")
    assert invoke == header("/v1/agents/{agent}/tasks")
    assert invoke["in"] == "header" and invoke["required"] is False
    assert invoke["schema"] == {"type": "string", "pattern": "^[!-~]{1,128}$"}


@pytest.mark.parametrize("length", ["9" * 5000, "1" + "0" * 19])
def test_a_content_length_of_more_than_19_digits_is_413_unread(length: str) -> None:
    # uvicorn's parser refuses such a header itself; Mangum (Lambda) hands it to the app as it came.
    app = create_app(Settings(agents="[]", max_request_bytes=1000))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
            request = client.build_request("POST", INVOKE, content=b'{"input": "hi"}', headers=JSON)
            request.headers["Content-Length"] = length
            return await client.send(request)

    response = asyncio.run(send())
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "payload_too_large",
        "message": "the request body exceeds 1000 bytes",
    }
