"""Building the guardrails from settings: the redactor (with the runtime's own secrets) and the screens."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from agent_runtime.governance.guardrails import (
    CONTENT_SAFETY_SCOPE,
    AzurePromptShields,
    Guardrails,
    HeuristicScreen,
    PromptShield,
)
from agent_runtime.governance.redaction import Redactor
from agent_runtime.settings import Settings


def build_guardrails(settings: Settings, http: httpx.AsyncClient, redactor: Redactor) -> Guardrails:
    return Guardrails(
        mode=settings.injection_screening,
        heuristics=HeuristicScreen(settings.injection_patterns),
        shield=_prompt_shields(settings, http),
        leakage=settings.output_leakage,
        redactor=redactor,
    )


def build_redactor(settings: Settings) -> Redactor:
    return Redactor(
        pii=settings.redact_pii, patterns=settings.sensitive_patterns, secrets=_own_secrets(settings)
    )


def _own_secrets(settings: Settings) -> Iterator[str]:
    """The credentials the runtime itself holds: they must never appear in an answer, log or trace."""
    if settings.llm_api_key:
        yield settings.llm_api_key
    if settings.api_key is not None:
        yield settings.api_key.get_secret_value()
    if settings.api_keys is not None:
        try:
            keys = json.loads(settings.api_keys.get_secret_value())
        except json.JSONDecodeError:
            return  # reported with its position by the authenticator
        if isinstance(keys, dict):
            yield from keys


def _prompt_shields(settings: Settings, http: httpx.AsyncClient) -> PromptShield | None:
    if not settings.content_safety_endpoint:
        return None
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    credential = (
        ManagedIdentityCredential(client_id=settings.identity_client_id)
        if settings.identity_client_id
        else DefaultAzureCredential()
    )

    async def token() -> str:
        return (await credential.get_token(CONTENT_SAFETY_SCOPE)).token

    return AzurePromptShields(settings.content_safety_endpoint, http, token)
