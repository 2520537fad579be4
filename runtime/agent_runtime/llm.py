"""The LLM layer: chat (plain and streaming) and embeddings over the ``openai`` SDK, with usage per call.

One client per process, built from :class:`Settings`: ``AsyncOpenAI`` for any OpenAI-compatible endpoint
(OpenAI, vLLM, Ollama, the scripted model server) and ``AsyncAzureOpenAI`` for Azure OpenAI. Locally an API
key; in Azure an Entra ID token from the managed identity, so no key ever lives in the cloud. SDK errors
become :class:`ModelError`, so the API reports an upstream failure as 502 rather than a 500.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from agent_runtime.errors import ModelError
from agent_runtime.memory.base import Message
from agent_runtime.settings import Settings
from agent_runtime.trace import TokenUsage

usage_log = logging.getLogger("agentstage.usage")


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for; ``arguments`` is the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    """One finished model call: the assistant's text and/or tool calls, and what it cost."""

    model: str
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    usage: TokenUsage
    latency_ms: float

    def as_message(self) -> Message:
        """The assistant message to append to the conversation before the tool results."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


@dataclass(frozen=True)
class TextDelta:
    """A piece of the assistant's text, streamed as the model produces it."""

    text: str


@dataclass
class _ToolCallParts:
    """Tool-call fragments of a stream, joined as they arrive."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


RequestHook = Callable[[httpx.Request], Awaitable[None]]


def build_client(
    settings: Settings, request_hooks: Sequence[RequestHook] = ()
) -> tuple[openai.AsyncOpenAI, Any]:
    """The SDK client the settings describe, and the Azure credential to close with it (or ``None``).

    The SDK's own retries are off: :mod:`agent_runtime.resilience` retries, so each attempt is observed and
    bounded by the request's deadline. ``request_hooks`` run on every outgoing HTTP request (trace context).
    """
    credential: Any = None
    token_provider: Callable[[], Awaitable[str]] | None = None
    if settings.llm_auth == "entra":
        from azure.identity.aio import (
            DefaultAzureCredential,
            ManagedIdentityCredential,
            get_bearer_token_provider,
        )

        credential = (
            ManagedIdentityCredential(client_id=settings.identity_client_id)
            if settings.identity_client_id
            else DefaultAzureCredential()
        )
        token_provider = get_bearer_token_provider(credential, settings.llm_token_scope)
    # The SDK insists on a key; endpoints without auth (vLLM, Ollama, the scripted server) never check it.
    api_key = (settings.llm_api_key if settings.llm_auth == "api_key" else None) or "unused"
    common: dict[str, Any] = {
        "timeout": settings.llm_timeout_seconds,
        "max_retries": 0,
        "http_client": openai.DefaultAsyncHttpxClient(event_hooks={"request": list(request_hooks)}),
    }
    client: openai.AsyncOpenAI
    if settings.llm_provider == "azure_openai":
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=settings.llm_endpoint,
            api_version=settings.llm_api_version,
            azure_ad_token_provider=token_provider,
            api_key=None if token_provider else api_key,
            **common,
        )
    else:
        client = openai.AsyncOpenAI(
            base_url=settings.llm_endpoint, api_key=token_provider or api_key, **common
        )
    return client, credential


class LLM:
    """Chat and embeddings through one long-lived SDK client (connection pooling, no per-call setup)."""

    def __init__(
        self, client: openai.AsyncOpenAI, credential: Any = None, *, max_output_tokens: int = 4096
    ) -> None:
        self._client = client
        self._credential = credential
        self._max_output = max_output_tokens

    @classmethod
    def from_settings(cls, settings: Settings, request_hooks: Sequence[RequestHook] = ()) -> LLM:
        return cls(*build_client(settings, request_hooks), max_output_tokens=settings.max_output_tokens)

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()

    async def complete(
        self, model: str, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()
    ) -> Completion:
        """One chat completion, waited for in full."""
        started = time.perf_counter()
        try:
            response = await self._client.chat.completions.create(
                model=model,
                messages=_sdk_messages(messages),
                tools=_sdk_tools(tools),
                max_completion_tokens=self._max_output,
            )
        except (openai.OpenAIError, ValueError) as error:
            raise _model_error(error) from error
        if not response.choices:
            raise ModelError("the model returned no choices")
        choice = response.choices[0]
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments or "")
            for c in choice.message.tool_calls or ()
            if c.type == "function"
        )
        return _finished(
            model, choice.message.content, calls, choice.finish_reason, TokenUsage.of(response.usage), started
        )

    async def stream(
        self, model: str, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """A streamed chat completion: :class:`TextDelta` pieces, then the whole :class:`Completion`."""
        started = time.perf_counter()
        text: list[str] = []
        parts: dict[int, _ToolCallParts] = {}
        finish_reason: str | None = None
        usage = TokenUsage()
        try:
            chunks = await self._client.chat.completions.create(
                model=model,
                messages=_sdk_messages(messages),
                tools=_sdk_tools(tools),
                stream=True,
                stream_options={"include_usage": True},
                max_completion_tokens=self._max_output,
            )
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = TokenUsage.of(chunk.usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish_reason = choice.finish_reason or finish_reason
                if choice.delta.content:
                    text.append(choice.delta.content)
                    yield TextDelta(choice.delta.content)
                for delta in choice.delta.tool_calls or ():
                    part = parts.setdefault(delta.index, _ToolCallParts())
                    part.id = delta.id or part.id
                    if delta.function is not None:
                        part.name = delta.function.name or part.name
                        part.arguments.append(delta.function.arguments or "")
        except (openai.OpenAIError, ValueError) as error:
            raise _model_error(error) from error
        calls = tuple(ToolCall(p.id, p.name, "".join(p.arguments)) for _, p in sorted(parts.items()))
        yield _finished(model, "".join(text) if text else None, calls, finish_reason, usage, started)

    async def embed(self, texts: Sequence[str], *, model: str, dimensions: int) -> list[list[float]]:
        """Embeddings of ``texts``, in order."""
        started = time.perf_counter()
        try:
            response = await self._client.embeddings.create(
                model=model, input=list(texts), dimensions=dimensions
            )
        except openai.OpenAIError as error:
            raise _model_error(error) from error
        _log_usage("embeddings", model, TokenUsage.of(response.usage), started)
        return [list(item.embedding) for item in sorted(response.data, key=lambda item: item.index)]


def _sdk_messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    """The runtime's messages are plain dicts already in OpenAI's shape; the SDK types them precisely."""
    return cast("list[ChatCompletionMessageParam]", list(messages))


def _sdk_tools(tools: Sequence[dict[str, Any]]) -> list[ChatCompletionToolParam] | openai.Omit:
    """Tool specs, omitted when there are none: several servers reject an empty list."""
    return cast("list[ChatCompletionToolParam]", list(tools)) if tools else openai.omit


def _finished(
    model: str,
    content: str | None,
    calls: tuple[ToolCall, ...],
    finish_reason: str | None,
    usage: TokenUsage,
    started: float,
) -> Completion:
    completion = Completion(
        model=model,
        content=content,
        tool_calls=calls,
        finish_reason=finish_reason,
        usage=usage,
        latency_ms=(time.perf_counter() - started) * 1000,
    )
    _log_usage("chat", model, usage, started)
    return completion


def _log_usage(operation: str, model: str, usage: TokenUsage, started: float) -> None:
    """One structured record per model call: the raw material of token metrics and cost reports."""
    if usage_log.isEnabledFor(logging.INFO):
        usage_log.info(
            json.dumps(
                {
                    "event": "model_call",
                    "operation": operation,
                    "model": model,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                }
            )
        )


RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def _model_error(error: Exception) -> ModelError:
    """Say which upstream failure happened without echoing request headers (and so no credentials), and
    whether a retry may help."""
    if isinstance(error, openai.APITimeoutError):
        return ModelError("the model endpoint timed out", retryable=True)
    if isinstance(error, openai.APIConnectionError):
        return ModelError("the model endpoint is unreachable", retryable=True)
    if isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("message") or "no details"
        return ModelError(
            f"the model endpoint answered HTTP {error.status_code}: {detail}",
            retryable=error.status_code in RETRYABLE_STATUS,
            retry_after=retry_after(error.response.headers),
        )
    if isinstance(error, ValueError | openai.APIResponseValidationError):
        return ModelError("the model endpoint answered with a malformed response", retryable=True)
    return ModelError(f"the model endpoint failed: {type(error).__name__}")


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI, Azure OpenAI) or ``Retry-After`` (seconds or HTTP date)."""
    if (millis := headers.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None
