"""The LLM layer sends what the openai SDK sent, to each provider in each auth mode, and records usage."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import pytest

from agent_runtime.errors import ModelError
from agent_runtime.llm import LLM, Completion, TextDelta, build_endpoint
from agent_runtime.settings import Settings
from agent_runtime.testing import Faults, ScriptedModelServer


class FakeCredential:
    """Stands in for ManagedIdentityCredential: records how it was built and which scopes were asked."""

    built_with: ClassVar[dict[str, Any]] = {}
    scopes: ClassVar[list[tuple[str, ...]]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeCredential.built_with = kwargs

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        FakeCredential.scopes.append(scopes)
        return type("Token", (), {"token": "entra-token", "expires_on": 2**31})()

    async def close(self) -> None:
        pass


def test_openai_compatible_endpoints_get_bearer_keys_and_plain_paths() -> None:
    endpoint, credential = build_endpoint(
        Settings(llm_endpoint="http://127.0.0.1:1/v1/", llm_api_key="sk-local")
    )
    assert credential is None
    assert endpoint.url("chat/completions", "gpt-4o") == "http://127.0.0.1:1/v1/chat/completions"
    assert asyncio.run(endpoint.auth_headers()) == {"Authorization": "Bearer sk-local"}
    keyless, _ = build_endpoint(
        Settings(llm_endpoint="http://127.0.0.1:1/v1", llm_auth="none", llm_api_key="k")
    )
    assert asyncio.run(keyless.auth_headers()) == {}, "llm_auth=none sends no credentials"


def test_azure_endpoints_use_deployment_paths_the_api_version_and_an_api_key_header() -> None:
    endpoint, _ = build_endpoint(
        Settings(
            llm_provider="azure_openai",
            llm_endpoint="https://acct.openai.azure.com/",
            llm_api_key="azure-key",
            llm_api_version="2024-10-21",
        )
    )
    assert endpoint.url("chat/completions", "gpt-4o") == (
        "https://acct.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    )
    assert endpoint.url("embeddings", "emb") == (
        "https://acct.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
    )
    assert asyncio.run(endpoint.auth_headers()) == {"api-key": "azure-key"}


def test_azure_with_entra_uses_the_managed_identity_and_no_key(
    model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("azure.identity.aio.ManagedIdentityCredential", FakeCredential)
    settings = Settings(
        llm_provider="azure_openai",
        llm_auth="entra",
        llm_endpoint=model.url,
        identity_client_id="client-123",
        llm_api_key="must-not-be-used",
        llm_token_scope="api://gateway-audience/.default",
    )
    endpoint, credential = build_endpoint(settings)
    assert isinstance(credential, FakeCredential)
    assert FakeCredential.built_with == {"client_id": "client-123"}

    async def chat() -> Completion:
        llm = LLM(endpoint, credential)
        try:
            return await llm.complete("my-deployment", [{"role": "user", "content": "via azure"}])
        finally:
            await llm.close()

    assert asyncio.run(chat()).content == "via azure"
    # The token is for the configured audience (here an API gateway's), Azure OpenAI's by default.
    assert FakeCredential.scopes[-1] == ("api://gateway-audience/.default",)
    assert Settings().llm_token_scope == "https://cognitiveservices.azure.com/.default"
    [headers] = model.headers
    assert headers["authorization"] == "Bearer entra-token" and "api-key" not in headers
    assert model.requests[0]["model"] == "my-deployment"


def test_the_request_is_what_the_openai_sdk_sends(model: ScriptedModelServer) -> None:
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none", max_output_tokens=77))
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

    async def chat() -> None:
        try:
            await llm.complete("m", [{"role": "user", "content": "hi"}])
            await llm.complete("m", [{"role": "user", "content": "hi"}], [tool])
        finally:
            await llm.close()

    asyncio.run(chat())
    plain, with_tools = model.requests
    assert plain == {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "m",
        "max_completion_tokens": 77,
    }
    assert "tools" not in plain, "an empty tool list is omitted: several servers reject it"
    assert with_tools["tools"] == [tool]


def test_status_errors_say_what_the_endpoint_said_and_whether_to_retry(model: ScriptedModelServer) -> None:
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def chat() -> None:
        try:
            await llm.complete("m", [{"role": "user", "content": "hi"}])
        finally:
            await llm.close()

    model.faults["*"] = Faults(rate_429=1.0, retry_after=2.5)
    with pytest.raises(ModelError) as raised:
        asyncio.run(chat())
    assert raised.value.message == "the model endpoint answered HTTP 429: rate limited (injected)"
    assert raised.value.retryable and raised.value.retry_after == 2.5
    model.faults["*"] = Faults(rate_malformed=1.0)
    with pytest.raises(ModelError, match="malformed response") as raised:
        asyncio.run(chat())
    assert raised.value.retryable


def test_an_unreachable_endpoint_is_a_retryable_model_error() -> None:
    llm = LLM.from_settings(Settings(llm_endpoint="http://127.0.0.1:9/v1", llm_auth="none"))

    async def chat() -> None:
        try:
            await llm.complete("m", [{"role": "user", "content": "hi"}])
        finally:
            await llm.close()

    with pytest.raises(ModelError, match="unreachable") as raised:
        asyncio.run(chat())
    assert raised.value.retryable


def test_stream_assembles_text_and_usage_and_logs_one_record_per_call(
    model: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.usage")
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def stream() -> list[TextDelta | Completion]:
        try:
            return [event async for event in llm.stream("m", [{"role": "user", "content": "story"}])]
        finally:
            await llm.close()

    *deltas, completion = asyncio.run(stream())
    assert isinstance(completion, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == completion.content
    assert completion.usage.total_tokens > 0 and completion.finish_reason == "stop"
    [record] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentstage.usage"]
    assert record["operation"] == "chat" and record["total_tokens"] == completion.usage.total_tokens


def test_embeddings_come_back_in_order(model: ScriptedModelServer) -> None:
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def embed() -> list[list[float]]:
        try:
            return await llm.embed(["one", "two", "one"], model="e", dimensions=16)
        finally:
            await llm.close()

    first, second, third = asyncio.run(embed())
    assert len(first) == 16 and first == pytest.approx(third) and first != pytest.approx(second)


def test_a_stream_without_events_is_a_malformed_answer(model: ScriptedModelServer) -> None:
    """An answer that is not server-sent events (here truncated JSON) must not pass as an empty reply."""
    model.faults["*"] = Faults(rate_malformed=1.0)
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def stream() -> list[TextDelta | Completion]:
        try:
            return [event async for event in llm.stream("m", [{"role": "user", "content": "story"}])]
        finally:
            await llm.close()

    with pytest.raises(ModelError, match="malformed response") as raised:
        asyncio.run(stream())
    assert raised.value.retryable


class _HangingUpServer:
    """An HTTP/1.1 server on loopback that answers ``answered`` requests per connection and then hangs up
    on the next one without a response: the race of a pooled keep-alive connection the server closes."""

    COMPLETION: ClassVar[bytes] = json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
    ).encode()

    def __init__(self, answered: int) -> None:
        self.answered = answered
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed an idle connection
                return
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.requests += 1
            if served == self.answered:
                writer.close()
                return
            served += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(self.COMPLETION)}\r\n\r\n".encode()
                + self.COMPLETION
            )
            await writer.drain()


def _complete_twice(server: _HangingUpServer) -> list[str]:
    async def run() -> list[str]:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        llm = LLM.from_settings(Settings(llm_endpoint=f"http://127.0.0.1:{port}/v1", llm_auth="none"))
        try:
            return [
                (await llm.complete("m", [{"role": "user", "content": "hi"}])).content or "" for _ in range(2)
            ]
        finally:
            await llm.close()
            listener.close()

    return asyncio.run(run())


def test_a_pooled_connection_closed_under_a_request_is_retried_once_on_a_new_one() -> None:
    server = _HangingUpServer(answered=1)
    assert _complete_twice(server) == ["ok", "ok"]
    assert (server.connections, server.requests) == (2, 3), "one hang-up, one resend on a new connection"


def test_a_server_that_keeps_hanging_up_is_an_unreachable_endpoint_after_one_resend() -> None:
    server = _HangingUpServer(answered=0)
    with pytest.raises(ModelError, match="unreachable") as raised:
        _complete_twice(server)
    assert raised.value.retryable, "the retry policy decides what happens next"
    assert server.requests == 2, "resent once, not in a loop"
