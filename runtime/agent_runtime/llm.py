"""The LLM layer: chat (plain and streaming) and embeddings, with usage per call, behind one interface.

:class:`ChatModel` is what the runtime calls; :func:`create_model` builds the one the settings name:
:class:`LLM` (below) for OpenAI-compatible endpoints and Azure OpenAI, ``llm_anthropic`` for Anthropic's
Messages API, ``llm_bedrock`` for Amazon Bedrock's Converse API. Every provider takes and returns the same
shapes: OpenAI-style messages in, :class:`Completion` / :class:`TextDelta` (and :class:`Progress` while a
tool call streams) out, tool calls as :class:`ToolCall` with JSON arguments, usage as :class:`TokenUsage`,
failures as :class:`ModelError`: an answer of the wrong shape or type too (:func:`malformed_answer`).

One :class:`LLM` per process, built from :class:`Settings`, speaks the OpenAI wire format to any compatible
endpoint (OpenAI, vLLM, Ollama, the scripted model server) and to Azure OpenAI (deployment-scoped paths and
the ``api-version`` query parameter). Locally an API key; in Azure an Entra ID token from the managed
identity, so no key ever lives in the cloud. Failures become :class:`ModelError`, so the API reports an
upstream failure as 502 rather than a 500, and say whether a retry may help.

The requests are sent with one long-lived HTTP client (:mod:`agent_runtime.http1`: pooled connections,
httptools' C parser) rather than the ``openai`` SDK: the SDK spends 2-3 ms of CPU per call on request
transformation and response model construction (and ``httpx``'s pool another 1-2 ms under concurrency),
more than everything else the runtime does for a request. The SDK also imports in ~0.7 s, which cold starts
no longer pay. This module sends exactly what the SDK sent for the calls the runtime makes, and has no
retries of its own: :mod:`agent_runtime.resilience` retries, so each attempt is observed and bounded by the
request's deadline.

What every HTTP provider shares lives here too, so each provider module is only its wire format:
:class:`ModelTransport` (the client, proxy, TLS, the resend of a request a pooled connection dropped, and
the mapping of statuses and transport failures to :class:`ModelError`), :func:`server_sent_events`,
:func:`json_body`, :func:`retry_after`, :func:`finished` (a :class:`Completion`, its finish reason and usage
held to sense, its usage logged), :func:`truncated_answer` and :class:`ToolCallParts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import proxy_bypass

import httpx
from aiohttp.helpers import proxies_from_env

from agent_runtime import http1
from agent_runtime.errors import ConfigurationError, ModelError
from agent_runtime.memory.base import Message
from agent_runtime.settings import Settings
from agent_runtime.trace import TokenUsage

log = logging.getLogger("agentstage.llm")
usage_log = logging.getLogger("agentstage.usage")

KEEPALIVE_SECONDS = 4.0
"""How long an idle connection to the model endpoint is kept: below the 5 s common servers allow."""

TokenProvider = Callable[[], Awaitable[str]]
HeaderHook = Callable[[dict[str, str]], None]
"""Called with the headers of every outgoing request, to add to them (trace context)."""
Authorize = Callable[[str, bytes, dict[str, str]], Awaitable[None]]
"""Adds a request's credentials to its headers, given its URL and body: a bearer token or key needs only the
headers, a request signature (SigV4) covers all three. Called on every request, after the header hooks."""


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for; ``arguments`` is the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str

    @classmethod
    def checked(cls, call_id: Any, name: Any, arguments: Any) -> ToolCall:
        """The call of an answer's fields, each a string (see :func:`str_field`): arguments sent as a JSON
        object rather than its text are a malformed answer, not a call the tool loop would choke on."""
        return cls(str_field(call_id), str_field(name), str_field(arguments))


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


@dataclass(frozen=True)
class Progress:
    """Yielded by a stream for an event that adds to the answer but not to its text (a piece of a tool
    call): nothing to show, only proof that the model is still answering.

    The gateway bounds a stream by the wait for its next event (:meth:`ModelGateway._attempt`); a model
    writing a long tool call sends no text for a while, and without these it would be cut off as stalled.
    Only what the answer is made of counts: keep-alive comments, empty deltas and what the runtime does not
    read (reasoning text) yield nothing, so a model that sends only those still times out.
    """


PROGRESS = Progress()
"""The one :class:`Progress` (it carries nothing)."""


@dataclass
class ToolCallParts:
    """Tool-call fragments of a stream, joined as they arrive."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def call(self, no_arguments: str = "") -> ToolCall:
        """The joined call (``no_arguments`` when no piece had any), its fields checked only here, once:
        a piece of the wrong type raises :class:`TypeError`, as :meth:`ToolCall.checked`."""
        return ToolCall.checked(self.id, self.name, "".join(self.arguments) or no_arguments)


class ChatModel(Protocol):
    """A model provider as the runtime uses it: one per process, shared by every request."""

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        max_output_tokens: int | None = None,
    ) -> Completion:
        """One chat completion, waited for in full. ``tools`` are OpenAI function-tool definitions."""
        ...

    def stream(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        max_output_tokens: int | None = None,
    ) -> AsyncGenerator[TextDelta | Progress | Completion, None]:
        """A streamed chat completion: :class:`TextDelta` pieces (and :data:`PROGRESS` for the events
        of a tool call), then the whole :class:`Completion`."""
        ...

    async def embed(self, texts: Sequence[str], *, model: str, dimensions: int) -> list[list[float]]:
        """Embeddings of ``texts``, in order."""
        ...

    async def close(self) -> None: ...


def create_model(settings: Settings, header_hooks: Sequence[HeaderHook] = ()) -> ChatModel:
    """The provider ``llm_provider`` names; a provider's client library is imported only when chosen."""
    if settings.llm_provider == "anthropic":
        from agent_runtime.llm_anthropic import AnthropicModel

        return AnthropicModel.from_settings(settings, header_hooks)
    if settings.llm_provider == "bedrock":
        from agent_runtime.llm_bedrock import BedrockModel

        return BedrockModel.from_settings(settings, header_hooks)
    return LLM.from_settings(settings, header_hooks)


@dataclass(frozen=True)
class ModelEndpoint:
    """Where model requests go and how they authenticate, as the ``openai`` SDK would send them.

    OpenAI-compatible: ``<base_url>/chat/completions``, ``Authorization: Bearer <key or token>``. Azure
    OpenAI: ``<endpoint>/openai/deployments/<deployment>/chat/completions?api-version=...``, with an
    ``api-key`` header, or ``Authorization: Bearer <Entra token>``.
    """

    base_url: str
    azure_api_version: str | None = None
    api_key: str | None = None
    token: TokenProvider | None = None

    def url(self, operation: str, model: str) -> str:
        if self.azure_api_version is None:
            return f"{self.base_url}/{operation}"
        query = urlencode({"api-version": self.azure_api_version})
        return f"{self.base_url}/deployments/{quote(model, safe='')}/{operation}?{query}"

    async def auth_headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {await self.token()}"}
        if self.api_key is None:
            return {}
        if self.azure_api_version is not None:
            return {"api-key": self.api_key}
        return {"Authorization": f"Bearer {self.api_key}"}


def build_endpoint(settings: Settings) -> tuple[ModelEndpoint, Any]:
    """The endpoint the settings describe, and the Azure credential to close with it (or ``None``).

    ``azure-identity`` is imported only for ``llm_auth=entra``.
    """
    credential: Any = None
    token: TokenProvider | None = None
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
        token = get_bearer_token_provider(credential, settings.llm_token_scope)
    api_key = settings.llm_api_key if settings.llm_auth == "api_key" else None
    if settings.llm_provider == "azure_openai":
        base = f"{settings.llm_endpoint.rstrip('/')}/openai"
        return ModelEndpoint(base, settings.llm_api_version, api_key, token), credential
    return ModelEndpoint(settings.llm_endpoint.rstrip("/"), None, api_key, token), credential


RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Statuses of an OpenAI-compatible endpoint that a retry may fix (the ``openai`` SDK's list)."""
MOST_TOKENS = 10**9
"""More tokens than any one call can use (a thousand times the largest context windows): a count past it is
nonsense, not usage."""
MAX_EVENT_BYTES = 4 * 1024 * 1024
"""The most a line of a server-sent event stream may hold (in bytes), and the data of one event (in
characters); more is a malformed answer. An event is a few tokens; even a whole answer in one event (servers
that fake streaming send one) is at most the output cap's tokens - 128k on today's largest models - of a few
bytes each, escaped: well under this. Unbounded, one line without its end (a broken or hostile endpoint) is
buffered whole, as much memory as it sends."""
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})
"""The finish reasons OpenAI's API defines, the only ones a :class:`Completion` carries (:func:`finished`):
the caller is shown the finish reason, and a model's own string there would be a channel past the output
guard. Providers map theirs to these first, so a cut answer stays ``length`` and a blocked one
``content_filter``."""
UNKNOWN_FINISH_REASON = "stop"
"""What any other finish reason becomes: the answer ended, for no reason the API defines."""
SHAPE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError)
"""What reading an answer of the wrong shape raises (a field missing, of the wrong type, not JSON): the
providers' parsers answer each with :func:`malformed_answer`."""
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
"""A request body's encoder, built once (``json.dumps`` with options builds one per call)."""


class ModelTransport:
    """POSTs JSON to one model endpoint over one long-lived HTTP client (:mod:`agent_runtime.http1`): what
    HTTP providers share.

    It owns what does not depend on the wire format: the client's lifetime (one per event loop, pooled
    connections dropped before common servers' idle timeout), the proxy the environment names, verified
    TLS, credentials (``authorize``), the resend of a request a pooled connection dropped (:meth:`_send`),
    and the mapping of every failure to a :class:`ModelError` that says whether a retry may help: a non-2xx
    status (with the endpoint's own message and ``Retry-After``), a timeout, an unreachable endpoint, a body
    cut short. A provider builds the URL, headers and body, and reads the answer.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        header_hooks: Sequence[HeaderHook] = (),
        authorize: Authorize | None = None,
        retryable_status: Container[int] = RETRYABLE_STATUS,
    ) -> None:
        self._base_url = base_url
        # Per connect and per read, as the SDK's httpx timeout: a long stream may take longer in total.
        self._timeout_seconds = timeout_seconds
        self._header_hooks = tuple(header_hooks)
        self._authorize = authorize
        self._retryable_status = retryable_status
        self._client: http1.Client | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # Looked up once, here, so that a malformed proxy variable stops the start, not every call.
        self._proxy = _env_proxy(base_url)

    def _http(self) -> http1.Client:
        """The client, created on first use: its connections belong to the event loop it was created in."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.closed:
            # Like the SDK's httpx client: the proxy the environment names for the endpoint (_env_proxy),
            # certifi's CAs unless SSL_CERT_FILE names others, up to 1,000 requests at once. Idle
            # connections are dropped before the 5 s after which uvicorn, Node and httpx servers close
            # them, so a request rarely meets a connection the server is closing (see _send).
            self._client = http1.Client(
                ssl_context=_ssl_context(),
                connect_timeout=self._timeout_seconds,
                read_timeout=self._timeout_seconds,
                keepalive=KEEPALIVE_SECONDS,
            )
            self._client_loop = loop
        return self._client

    async def close(self) -> None:
        if self._client is not None and not self._client.closed:
            with contextlib.suppress(RuntimeError):  # its event loop is gone: nothing left to close
                await self._client.close()
        self._client = None

    @contextlib.asynccontextmanager
    async def post(self, url: str, body: Any, headers: Mapping[str, str]) -> AsyncIterator[http1.Response]:
        """POST ``body`` as JSON; the response if its status is 2xx, else the :class:`ModelError` it means.

        ``headers`` go first, then the header hooks' and the credentials. Transport failures inside the
        block (a stream cut short, a read timeout) are mapped too.
        """
        sent = dict(headers)
        for hook in self._header_hooks:
            hook(sent)
        try:
            data = _COMPACT_JSON.encode(body).encode()
            if self._authorize is not None:
                await self._authorize(url, data, sent)
            response = await self._send(url, data, sent)
            async with response:
                if response.status >= 300:
                    raise await self._status_error(response)
                yield response
        except TimeoutError as error:
            raise ModelError("the model endpoint timed out", retryable=True) from error
        except http1.PayloadError as error:
            raise malformed_answer() from error
        except (http1.HttpError, OSError) as error:
            raise ModelError("the model endpoint is unreachable", retryable=True) from error

    async def _send(self, url: str, data: bytes, headers: Mapping[str, str]) -> http1.Response:
        """POST once more, on a new connection, when the connection closed before the answer began.

        A server may close an idle keep-alive connection just as it is taken from the pool; the request
        then fails before the server read it (the server hangs up without a response). Every HTTP client
        meets this race; the SDK hid it with its retries. It is not an outage, so it is retried here at
        once, not charged to the retry policy. A refused connection is an outage: it is not retried here.
        """
        http = self._http()
        try:
            return await http.post(url, data, headers, self._proxy)
        except http1.Disconnected:
            log.debug("the model endpoint closed a connection under a request; sending it again")
        return await http.post(url, data, headers, self._proxy)

    async def _status_error(self, response: http1.Response) -> ModelError:
        """Say which upstream failure happened without echoing request headers (and so no credentials),
        and whether a retry may help."""
        try:
            body: Any = json.loads(await response.read())
        except (ValueError, http1.HttpError):
            body = None
        return ModelError(
            f"the model endpoint answered HTTP {response.status}: {_detail(body)}",
            retryable=response.status in self._retryable_status,
            retry_after=retry_after(response.headers),
        )


class LLM:
    """Chat and embeddings over one long-lived HTTP session (connection pooling, no per-call setup)."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        credential: Any = None,
        *,
        max_output_tokens: int = 4096,
        timeout_seconds: float = 60.0,
        header_hooks: Sequence[HeaderHook] = (),
    ) -> None:
        self.endpoint = endpoint
        self._credential = credential
        self._max_output = max_output_tokens
        self._transport = ModelTransport(
            endpoint.base_url,
            timeout_seconds=timeout_seconds,
            header_hooks=header_hooks,
            authorize=self._authorize,
        )

    @classmethod
    def from_settings(cls, settings: Settings, header_hooks: Sequence[HeaderHook] = ()) -> LLM:
        endpoint, credential = build_endpoint(settings)
        return cls(
            endpoint,
            credential,
            max_output_tokens=settings.max_output_tokens,
            timeout_seconds=settings.llm_timeout_seconds,
            header_hooks=header_hooks,
        )

    async def close(self) -> None:
        await self._transport.close()
        if self._credential is not None:
            await self._credential.close()

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        max_output_tokens: int | None = None,
    ) -> Completion:
        """One chat completion, waited for in full."""
        started = time.perf_counter()
        body = self._chat_body(model, messages, tools, max_output_tokens)
        async with self._post("chat/completions", model, body) as response:
            data = await json_body(response)
        try:
            choices = data.get("choices")
            if not choices:
                raise ModelError("the model returned no choices")
            choice = choices[0]
            message = choice["message"]
            calls = tuple(
                ToolCall.checked(c["id"], c["function"]["name"], c["function"].get("arguments") or "")
                for c in message.get("tool_calls") or ()
                if c.get("type") == "function"
            )
            content = optional_str_field(message.get("content"))
            finish_reason = optional_str_field(choice.get("finish_reason"))
            usage = _usage(data)
        except SHAPE_ERRORS as error:
            raise malformed_answer() from error
        return finished(model, content, calls, finish_reason, usage, started)

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        max_output_tokens: int | None = None,
    ) -> AsyncGenerator[TextDelta | Progress | Completion, None]:
        """A streamed chat completion: :class:`TextDelta` pieces (:data:`PROGRESS` for tool-call pieces),
        then the whole :class:`Completion`.

        Only the text is checked as each event arrives, since it is passed on at once; the rest is checked
        once, when the calls are joined (a finish reason or a tool call's pieces of the wrong type).

        A whole stream ends with a chunk carrying the ``finish_reason``, then (asked for with
        ``include_usage``, as OpenAI and Azure OpenAI send it) a chunk with empty ``choices`` and the usage,
        then ``[DONE]``. A body that ends before its finish reason or its ``[DONE]`` was cut short, however
        cleanly its connection ended: a :func:`truncated_answer`, not a complete one, so a budget does not
        settle on the usage of an answer that never finished. Usage counts only from the finish on (servers
        that report it per chunk send the prompt's alone at first), and is held to no less than the chunks
        that carried the answer (see :func:`finished`): each is sent for at least one generated token.
        """
        started = time.perf_counter()
        text: list[str] = []
        parts: dict[int, ToolCallParts] = {}
        finish_reason: Any = None
        usage = TokenUsage()
        streamed = 0
        body = self._chat_body(model, messages, tools, max_output_tokens)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        async with self._post("chat/completions", model, body) as response:
            try:
                async for chunk in _chunks(response):
                    if choices := chunk.get("choices"):
                        choice = choices[0]
                        finish_reason = choice.get("finish_reason") or finish_reason
                        delta = choice.get("delta") or {}
                        carried = False  # a piece of the answer: one generated token at least
                        if content := delta.get("content"):
                            text.append(str_field(content))
                            carried = True
                            yield TextDelta(content)
                        if tool_calls := delta.get("tool_calls"):
                            for call in tool_calls:
                                part = parts.setdefault(call["index"], ToolCallParts())
                                part.id = call.get("id") or part.id
                                if call.get("function") is not None:
                                    part.name = call["function"].get("name") or part.name
                                    arguments = call["function"].get("arguments") or ""
                                    part.arguments.append(arguments)
                                    carried = carried or bool(arguments)
                            yield PROGRESS
                        if carried:
                            streamed += 1
                    if finish_reason is not None and chunk.get("usage") is not None:
                        usage = _usage(chunk)
                if finish_reason is None:
                    raise truncated_answer()
                calls = tuple(part.call() for _, part in sorted(parts.items()))
                finish_reason = optional_str_field(finish_reason)
            except SHAPE_ERRORS as error:
                raise malformed_answer() from error
        yield finished(
            model, "".join(text) if text else None, calls, finish_reason, usage, started, streamed=streamed
        )

    async def embed(self, texts: Sequence[str], *, model: str, dimensions: int) -> list[list[float]]:
        """Embeddings of ``texts``, in order."""
        started = time.perf_counter()
        body = {"model": model, "input": list(texts), "dimensions": dimensions}
        async with self._post("embeddings", model, body) as response:
            data = await json_body(response)
        try:
            items = sorted(data["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
            usage = _usage(data)
        except SHAPE_ERRORS as error:
            raise malformed_answer() from error
        log_usage("embeddings", model, usage, started)
        return vectors

    def _chat_body(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        max_output_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The request body; ``max_output_tokens`` (the agent's cap, which budgets held) else the default."""
        body: dict[str, Any] = {"messages": list(messages), "model": model}
        if tools:  # omitted when there are none: several servers reject an empty list
            body["tools"] = list(tools)
        body["max_completion_tokens"] = max_output_tokens or self._max_output
        return body

    def _post(
        self, operation: str, model: str, body: dict[str, Any]
    ) -> contextlib.AbstractAsyncContextManager[http1.Response]:
        return self._transport.post(self.endpoint.url(operation, model), body, JSON_HEADERS)

    async def _authorize(self, url: str, data: bytes, headers: dict[str, str]) -> None:
        headers.update(await self.endpoint.auth_headers())


async def json_body(response: http1.Response) -> dict[str, Any]:
    """The response's JSON object; anything else is a malformed answer."""
    try:
        data = json.loads(await response.read())
    except ValueError as error:  # not JSON, or not UTF-8
        raise malformed_answer() from error
    if not isinstance(data, dict):
        raise malformed_answer()
    return data


async def server_sent_events(
    response: http1.Response, *, until_done: bool = False
) -> AsyncIterator[tuple[str, Any]]:
    """The name (``""`` when it has none) and JSON ``data`` of each server-sent event, until the body ends
    or OpenAI's ``[DONE]``. Data that is not JSON is a malformed answer, and so is a body without any event
    (an error page, a truncated answer). What an event means, an error included, is the provider's call.

    ``until_done``: the stream's format ends every whole stream with ``[DONE]`` (OpenAI's), so a body that
    ends before it is a :func:`truncated_answer`, however cleanly its connection closed."""
    data: list[str] = []
    size = 0
    event = ""
    seen = False
    async for line in _lines(response):
        if line:
            field_name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field_name == "data":
                data.append(value)
                size += len(value)
                if size > MAX_EVENT_BYTES:  # many lines of one event buffer as much as one long line
                    raise malformed_answer()
            elif field_name == "event":
                event = value
            continue
        # A blank line ends an event; comments and keep-alives carry no data.
        name, event = event, ""
        if not data:
            continue
        payload, data, size = "\n".join(data), [], 0
        if payload.startswith("[DONE]"):
            return
        seen = True
        try:
            parsed = json.loads(payload)
        except ValueError as error:
            raise malformed_answer() from error
        yield name, parsed
    if not seen:
        raise malformed_answer()
    if until_done:
        raise truncated_answer()


async def _chunks(response: http1.Response) -> AsyncIterator[dict[str, Any]]:
    """The chunks of an OpenAI stream; an ``error`` event (or an error in place of a chunk) raises."""
    async for event, chunk in server_sent_events(response, until_done=True):
        if event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
            raise ModelError(f"the model endpoint failed mid-stream: {_detail(chunk)}")
        if not isinstance(chunk, dict):
            raise malformed_answer()
        yield chunk


async def _lines(response: http1.Response) -> AsyncIterator[str]:
    """The body's lines, without their ends, however the network split them; a line longer than
    :data:`MAX_EVENT_BYTES` is a malformed answer.

    Each piece is split once, and the start of a line that has not ended is held as its pieces, joined once
    when its end arrives: linear in the line's length. (Adding each piece to the held bytes and splitting
    them all again re-copied and re-scanned a long line for every piece: seconds of CPU for tens of MB.)
    """
    held: list[bytes] = []
    held_bytes = 0
    async for piece in response.iter_any():
        lines = piece.split(b"\n")
        rest = lines.pop()
        if lines and held:
            held.append(lines[0])
            lines[0] = b"".join(held)
            held.clear()
            held_bytes = 0
        for line in lines:
            if len(line) > MAX_EVENT_BYTES:
                raise malformed_answer()
            yield line.rstrip(b"\r").decode()
        if rest:
            held.append(rest)
            held_bytes += len(rest)
            if held_bytes > MAX_EVENT_BYTES:
                raise malformed_answer()
    if held:
        yield b"".join(held).rstrip(b"\r").decode()
    yield ""  # the end of the body ends an unterminated last event


def _usage(data: Mapping[str, Any]) -> TokenUsage:
    """``usage`` of an OpenAI response (zeros when an endpoint does not report it)."""
    usage = data.get("usage")
    if not usage:
        return TokenUsage()
    return TokenUsage(
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
        total_tokens=usage.get("total_tokens") or 0,
    )


def finished(
    model: str,
    content: str | None,
    calls: tuple[ToolCall, ...],
    finish_reason: str | None,
    usage: TokenUsage,
    started: float,
    *,
    streamed: int = 0,
) -> Completion:
    """The :class:`Completion` of a chat call begun at ``started`` (``perf_counter``), its usage logged.

    The usage an endpoint reports is what budgets settle to, so it is held to sense: counts below zero or
    past :data:`MOST_TOKENS` are a malformed answer (a negative count would credit the ledger), a total
    below its parts is their sum, and output below ``streamed`` is ``streamed``.

    ``streamed`` is how many events of a stream carried a piece of the answer (text or a tool call's
    arguments), the empty ones not counted: a lower bound on the output tokens, since a model server sends
    such an event for a step of generation, which yields at least one token (a step whose token ends
    inside a character sends nothing until a later token completes it: fewer events, never more). Reported
    output below it is not what the model spent (a broken or hostile endpoint, or a proxy in front of it),
    and is raised to it; the excess is added to the total too. Usage not reported at all (zeros) is left
    so: the call then spends its whole hold, more than this bound.

    A finish reason outside :data:`FINISH_REASONS` becomes :data:`UNKNOWN_FINISH_REASON`; ``None`` (not
    reported) stays ``None``."""
    counts = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    if not all(0 <= count <= MOST_TOKENS for count in counts):
        raise malformed_answer()
    if usage.total_tokens < usage.prompt_tokens + usage.completion_tokens:
        usage = usage.model_copy(update={"total_tokens": usage.prompt_tokens + usage.completion_tokens})
    if usage.total_tokens and usage.completion_tokens < streamed:
        log.warning(
            "the model endpoint reported %d output tokens for an answer streamed in %d pieces: counted %d",
            usage.completion_tokens,
            streamed,
            streamed,
        )
        missing = streamed - usage.completion_tokens
        usage = usage.model_copy(
            update={"completion_tokens": streamed, "total_tokens": usage.total_tokens + missing}
        )
    if finish_reason is not None and finish_reason not in FINISH_REASONS:
        finish_reason = UNKNOWN_FINISH_REASON
    completion = Completion(
        model=model,
        content=content,
        tool_calls=calls,
        finish_reason=finish_reason,
        usage=usage,
        latency_ms=(time.perf_counter() - started) * 1000,
    )
    log_usage("chat", model, usage, started)
    return completion


def log_usage(operation: str, model: str, usage: TokenUsage, started: float) -> None:
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


def _detail(body: Any) -> str:
    """The ``message`` of an error body: OpenAI's and Anthropic's ``{"error": {"message": ...}}``, or the
    bare error object."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else "no details"


def str_field(value: Any) -> str:
    """``value``, which the answer's format says is a string; anything else raises :class:`TypeError`,
    which the parsers answer with :func:`malformed_answer` (:data:`SHAPE_ERRORS`).

    Passed on, a number where text belongs fails far from the parser (in the output guard, the trace, the
    response): a 500, or a stream cut without an error event, for what is the endpoint's fault."""
    if not isinstance(value, str):
        raise TypeError(f"a string was expected, not {type(value).__name__}")
    return value


def optional_str_field(value: Any) -> str | None:
    """``value`` if it is a string or ``None`` (an absent content or finish reason); else as
    :func:`str_field`."""
    return None if value is None else str_field(value)


def malformed_answer() -> ModelError:
    """The error of an answer that cannot be read (a retry may get a whole one)."""
    return ModelError("the model endpoint answered with a malformed response", retryable=True)


def truncated_answer() -> ModelError:
    """The error of a stream whose body ended before the answer did: without its finish reason, or without
    the end its format marks (OpenAI's ``[DONE]``). What it spent is not known (a retry may get it whole)."""
    return ModelError("the model endpoint's stream ended before its answer did", retryable=True)


def _env_proxy(url: str) -> http1.Proxy | None:
    """The proxy ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` name for ``url``, with the credentials of
    its URL or ``~/.netrc``.

    ``Proxy-Authorization`` is for the proxy alone: through an HTTPS tunnel it is a header of the ``CONNECT``
    request, never of the request inside, which the endpoint reads; a plain HTTP request is the proxy's to
    read, so there it is one of the request's own headers.
    """
    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    try:
        info = proxies_from_env().get(parts.scheme)
    except ValueError as error:
        raise ConfigurationError(
            f"a proxy variable is not a valid URL ({error}): correct HTTPS_PROXY / HTTP_PROXY (or their "
            "lower-case forms), or unset them to reach the model endpoint directly"
        ) from None
    if info is None:
        return None
    proxy_url = str(info.proxy)
    if info.proxy_auth is None:
        return http1.Proxy(proxy_url)
    credentials = {"Proxy-Authorization": info.proxy_auth.encode()}
    if parts.scheme == "https":
        return http1.Proxy(proxy_url, tunnel_headers=credentials)
    return http1.Proxy(proxy_url, request_headers=credentials)


def _ssl_context() -> ssl.SSLContext:
    """Verified TLS exactly as the SDK's httpx client had it: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else
    certifi's CA bundle."""
    return httpx.create_ssl_context()


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI, Azure OpenAI) or ``Retry-After`` (seconds or HTTP date).

    ``headers`` is a case-insensitive mapping (:class:`agent_runtime.http1.Headers` or ``httpx``'s).
    """
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
