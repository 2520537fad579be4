"""The LLM layer builds the right SDK client for each provider and auth mode, and records usage."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import openai
import pytest
from agent_runtime.llm import LLM, Completion, TextDelta, build_client
from agent_runtime.settings import Settings
from agent_runtime.testing import ScriptedModelServer


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


def test_openai_compatible_endpoints_get_an_api_key_client() -> None:
    client, credential = build_client(Settings(llm_endpoint="http://127.0.0.1:1/v1", llm_api_key="sk-local"))
    assert type(client) is openai.AsyncOpenAI and credential is None
    assert (client.api_key, str(client.base_url)) == ("sk-local", "http://127.0.0.1:1/v1/")


def test_azure_with_entra_uses_the_managed_identity_and_no_key(
    model_server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("azure.identity.aio.ManagedIdentityCredential", FakeCredential)
    settings = Settings(
        llm_provider="azure_openai",
        llm_auth="entra",
        llm_endpoint=model_server.url,
        identity_client_id="client-123",
        llm_api_key="must-not-be-used",
        llm_token_scope="api://gateway-audience/.default",
    )
    client, credential = build_client(settings)
    assert isinstance(client, openai.AsyncAzureOpenAI) and isinstance(credential, FakeCredential)
    assert FakeCredential.built_with == {"client_id": "client-123"}

    async def chat() -> Completion:
        llm = LLM(client, credential)
        try:
            return await llm.complete("my-deployment", [{"role": "user", "content": "via azure"}])
        finally:
            await llm.close()

    assert asyncio.run(chat()).content == "via azure"
    # The token is for the configured audience (here an API gateway's), Azure OpenAI's by default.
    assert FakeCredential.scopes[-1] == ("api://gateway-audience/.default",)
    assert Settings().llm_token_scope == "https://cognitiveservices.azure.com/.default"


def test_stream_assembles_text_and_usage_and_logs_one_record_per_call(
    model_server: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.usage")
    llm = LLM.from_settings(Settings(llm_endpoint=model_server.base_url, llm_auth="none"))

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


def test_embeddings_come_back_in_order(model_server: ScriptedModelServer) -> None:
    llm = LLM.from_settings(Settings(llm_endpoint=model_server.base_url, llm_auth="none"))

    async def embed() -> list[list[float]]:
        try:
            return await llm.embed(["one", "two", "one"], model="e", dimensions=16)
        finally:
            await llm.close()

    first, second, third = asyncio.run(embed())
    assert len(first) == 16 and first == pytest.approx(third) and first != pytest.approx(second)
