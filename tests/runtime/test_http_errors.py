"""Hostile and malformed requests get a JSON 4xx, never a 500; true bugs get a JSON 500, no traceback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import Request
from runtime_helpers import USER_KEY, Runtime, RuntimeFactory

from agent_runtime.api import create_app
from agent_runtime.settings import Settings

AUTH = {"Authorization": f"Bearer {USER_KEY}", "Content-Type": "application/json"}
INVOKE = "/v1/agents/assistant/invoke"


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (INVOKE, b"{not json", 400, {"code": "invalid_request", "message": "the body is not valid JSON"}),
        (INVOKE, b"", 422, {"code": "invalid_request", "message": "Field required"}),
        (
            INVOKE,
            b'{"input": 42}',
            422,
            {"code": "invalid_request", "message": "input: Input should be a valid string", "field": "input"},
        ),
        (
            INVOKE,
            b'{"input": "hi", "messages": [{"role": "user", "content": "hi"}]}',
            422,
            {"code": "invalid_request", "message": "Value error, send exactly one of 'input' and 'messages'"},
        ),
        (
            INVOKE,
            b'{"input": "hi", "surprise": 1}',
            422,
            {
                "code": "invalid_request",
                "message": "surprise: Extra inputs are not permitted",
                "field": "surprise",
            },
        ),
        (
            INVOKE,
            b'{"messages": [{"role": "tool", "content": "x"}]}',
            422,
            {
                "code": "invalid_request",
                "message": "messages.0.role: Input should be 'system', 'developer', 'user' or 'assistant'",
                "field": "messages.0.role",
            },
        ),
        (
            INVOKE,
            b'{"input": "hi", "conversation_id": "../../etc"}',
            422,
            {
                "code": "invalid_request",
                "message": "conversation_id: String should match pattern '^[A-Za-z0-9_.:-]{1,128}$'",
                "field": "conversation_id",
            },
        ),
        (
            INVOKE,
            b"[]",
            422,
            {
                "code": "invalid_request",
                "message": "Input should be a valid dictionary or object to extract fields from",
            },
        ),
        (
            "/v1/agents/nobody/invoke",
            b'{"input": "hi"}',
            404,
            {"code": "unknown_agent", "message": "no agent named 'nobody'", "field": "agent"},
        ),
        (
            "/v1/chat/completions",
            b'{"model": "assistant", "messages": []}',
            422,
            {
                "code": "invalid_request",
                "message": "messages: List should have at least 1 item after validation, not 0",
                "field": "messages",
            },
        ),
        (
            "/v1/chat/completions",
            b'{"model": "assistant", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
            422,
            {
                "code": "invalid_request",
                "message": "messages.0.content: Value error, "
                'content parts must be {"type": "text", "text": "..."}',
                "field": "messages.0.content",
            },
        ),
        ("/v1/nothing", b"{}", 404, {"code": "not_found", "message": "Not Found"}),
    ],
)
def test_bad_requests_get_the_right_4xx(
    runtime: Runtime, path: str, body: bytes, status: int, error: dict[str, str]
) -> None:
    response = runtime.http.post(path, content=body, headers=AUTH)
    assert response.status_code == status
    assert error_of(response) == error


def test_wrong_method_is_405_json(runtime: Runtime) -> None:
    response = runtime.http.get(INVOKE, headers=AUTH)
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_an_oversized_body_is_refused_by_its_content_length(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(max_request_bytes=1000)
    response = runtime.http.post(INVOKE, content=json.dumps({"input": "x" * 2000}), headers=AUTH)
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "payload_too_large",
        "message": "the request body exceeds 1000 bytes",
    }


def test_an_oversized_chunked_body_is_refused_while_it_arrives(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(max_request_bytes=1000)

    def chunks() -> Iterator[bytes]:
        yield b'{"input": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}'

    response = runtime.http.post(INVOKE, content=chunks(), headers=AUTH)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_a_malformed_content_length_is_400() -> None:
    # uvicorn's parser already refuses one; hosts that hand headers through unchecked meet the middleware.
    app = create_app(Settings(agents="[]"))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
            request = client.build_request("POST", INVOKE, content=b'{"input": "hi"}', headers=AUTH)
            request.headers["Content-Length"] = "lots"
            return await client.send(request)

    response = asyncio.run(send())
    assert response.status_code == 400
    assert error_of(response) == {"code": "invalid_request", "message": "Content-Length is not a number"}


def test_an_oversized_prompt_is_413(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(max_prompt_chars=100)
    response = runtime.invoke("assistant", "y" * 101)
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "prompt_too_large",
        "message": "the messages hold 101 characters; the limit is 100",
        "field": "input",
    }
    body = {"model": "assistant", "messages": [{"role": "user", "content": "z" * 60}] * 2, "stream": True}
    streamed = runtime.post("/v1/chat/completions", body)
    assert streamed.status_code == 413
    assert error_of(streamed)["field"] == "messages"


def test_a_true_bug_is_a_json_500_without_traceback(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory()
    app = runtime.server._server.config.app  # the served FastAPI app

    async def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/broken", broken)
    response = runtime.http.get("/broken")
    assert response.status_code == 500
    assert error_of(response) == {
        "code": "internal_error",
        "message": "internal error; the operators have the details in the log",
    }
    assert "secret" not in response.text


def test_health_and_readiness_need_no_auth(runtime: Runtime) -> None:
    assert runtime.http.get("/healthz").json() == {"status": "ok"}
    assert runtime.http.get("/readyz").json() == {
        "status": "ready",
        "checks": {"conversations": "ok", "vectors": "ok"},
    }


def test_readiness_fails_when_a_store_fails(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory()
    app = runtime.server._server.config.app

    async def lose_vectors(request: Request) -> None:
        services = await request.app.state.lifecycle.get()
        await services.vectors.close()

    app.add_api_route("/lose-vectors", lose_vectors, methods=["POST"])
    runtime.http.post("/lose-vectors")
    response = runtime.http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"conversations": "ok", "vectors": "error: RuntimeError"},
    }


def test_the_openapi_spec_documents_routes_bodies_and_errors() -> None:
    spec = create_app(Settings(agents="[]")).openapi()
    paths = spec["paths"]
    assert set(paths) == {
        "/healthz",
        "/readyz",
        "/v1/agents",
        "/v1/agents/{agent}/invoke",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/agents/{agent}/tasks",
        "/v1/tasks/{task_id}",
        "/v1/tasks/{task_id}/cancel",
        "/v1/tasks/{task_id}/approval",
        "/v1/approvals",
        "/v1/conversations",
        "/v1/conversations/{conversation_id}",
        "/v1/tenants/{tenant}/conversations",
    }
    conversation = paths["/v1/conversations/{conversation_id}"]
    assert set(conversation) == {"get", "delete"}
    for method in ("get", "delete"):
        assert conversation[method]["responses"]["404"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/ErrorResponse")
    assert "403" in paths["/v1/tenants/{tenant}/conversations"]["delete"]["responses"]
    submit = paths["/v1/agents/{agent}/tasks"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TaskRequest")
    assert submit["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/TaskView")
    assert "Idempotency-Key" in [p["name"] for p in submit["parameters"]]
    invoke = paths["/v1/agents/{agent}/invoke"]["post"]
    assert invoke["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/InvokeRequest")
    assert invoke["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/InvokeResponse"
    )
    for status in ("400", "401", "404", "413", "422", "502", "504"):
        schema = invoke["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorResponse"), status
    chat = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer" and schemes["APIKeyHeader"]["name"] == "api-key"
    assert "security" not in paths["/healthz"]["get"]
