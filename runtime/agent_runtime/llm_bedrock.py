"""Amazon Bedrock as the runtime's model: chat through the Converse API, plain and streaming, and embeddings
through Titan Text Embeddings v2, with boto3's ``bedrock-runtime`` client.

Calls are signed (SigV4) with the credentials boto3 finds: the environment, an EKS pod's web identity, the
Lambda or ECS execution role. No key is ever in the settings. The region is ``aws_region``, else the host's
``AWS_REGION``; the SDK's own ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_ENDPOINT_URL`` point the client
elsewhere (a VPC endpoint, or :mod:`agent_runtime.testing.bedrock_server`).

boto3 blocks, so every call runs on a thread of this model's pool, never on the event loop. The pool's size
is also the size of boto3's connection pool: threads and connections are bounded together. A stream keeps
its thread while it lasts: the thread iterates botocore's ``EventStream`` and hands each event to the event
loop through :class:`_Handoff`, which holds at most ``STREAM_BUFFER`` events (a slow consumer slows the
reading instead of growing a buffer). A consumer that stops early (a deadline, a client gone) tells the
thread, which closes the stream, and so its HTTP connection, as soon as it holds the next event: at once
when it was waiting for buffer space, else when the model sends the next event or the read times out.

botocore does not retry (one attempt in total): :mod:`agent_runtime.resilience` retries, as for every
provider, so each attempt is observed and bounded by the request's deadline. Bedrock's errors become
:class:`ModelError` with the service's message; ``retryable`` follows the error type (throttling,
unavailability, timeouts and model readiness are transient; validation and access are not). No
credentials at all is the operator's :class:`ConfigurationError`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import boto3
import urllib3.exceptions
from botocore.config import Config
from botocore.eventstream import ParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from agent_runtime.errors import ConfigurationError, ModelError
from agent_runtime.llm import (
    PROGRESS,
    SHAPE_ERRORS,
    Completion,
    HeaderHook,
    Progress,
    TextDelta,
    ToolCall,
    ToolCallParts,
    finished,
    log_usage,
    malformed_answer,
    optional_str_field,
    str_field,
)
from agent_runtime.memory.base import Message
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_name
from agent_runtime.trace import TokenUsage

T = TypeVar("T")

MAX_CONCURRENT_CALLS = 64
"""Threads of the pool and HTTP connections to Bedrock; further calls wait for one to finish."""
STREAM_BUFFER = 64
"""Events a stream's thread may read ahead of its consumer."""
EMBED_CONCURRENCY = 8
"""Titan embeds one text per call: at most this many calls of one :meth:`BedrockModel.embed` at once."""

RETRYABLE_ERRORS = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "InternalServerException",
        "ModelStreamErrorException",
    }
)
_HINTS = {
    "AccessDeniedException": "the runtime's role needs bedrock:InvokeModel (and "
    "bedrock:InvokeModelWithResponseStream to stream) on the model, and the model must be enabled in "
    "the account",
    "ResourceNotFoundException": "check the model id and that the model is offered in this region",
    "UnrecognizedClientException": "check the AWS credentials the runtime runs with",
    "InvalidSignatureException": "check the AWS credentials the runtime runs with",
    "ExpiredTokenException": "the AWS credentials the runtime runs with have expired",
}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Converse's ``stopReason`` as OpenAI's ``finish_reason``; any other is ``stop``
(:func:`~agent_runtime.llm.finished`)."""
_END = object()
"""Handed over after a stream's last event."""
_SDK_ERRORS = (BotoCoreError, ClientError, ParserError, ResponseParserError, urllib3.exceptions.HTTPError)
"""What boto3 raises: error responses, and failures to sign, connect, read or parse (an event stream is
read with urllib3 directly, so its errors arrive as urllib3's)."""


class BedrockModel:
    """Chat and embeddings on Amazon Bedrock through one boto3 client, shared by every request.

    ``guardrail`` (identifier, version) goes with every Converse call.
    """

    def __init__(
        self,
        client: Any,
        *,
        max_output_tokens: int = 4096,
        guardrail: tuple[str, str] | None = None,
        header_hooks: Sequence[HeaderHook] = (),
    ) -> None:
        self._client = client
        self._max_output = max_output_tokens
        self._guardrail = guardrail
        self._executor = ThreadPoolExecutor(MAX_CONCURRENT_CALLS, thread_name_prefix="agentstage-bedrock")
        self._closed = False
        if header_hooks:
            client.meta.events.register(
                "before-sign.bedrock-runtime", functools.partial(_add_headers, tuple(header_hooks))
            )

    @classmethod
    def from_settings(cls, settings: Settings, header_hooks: Sequence[HeaderHook] = ()) -> BedrockModel:
        """The client the settings describe; nothing is contacted (credentials are looked up on first use)."""
        if settings.llm_auth != "aws":
            variable = env_name("llm_auth")
            raise ConfigurationError(
                f"llm_provider 'bedrock' signs its calls with AWS credentials: set {variable}=aws (they come "
                "from the environment or the execution role, never from the settings)",
                field=variable,
            )
        config = Config(
            connect_timeout=settings.llm_timeout_seconds,
            read_timeout=settings.llm_timeout_seconds,
            # One attempt: the resilience layer retries. (botocore's "max_attempts" counts retries only,
            # so max_attempts=1 would still send every failing call twice.)
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=MAX_CONCURRENT_CALLS,
        )
        region = settings.aws_region or os.environ.get("AWS_REGION") or None
        try:
            client = boto3.session.Session().client("bedrock-runtime", region_name=region, config=config)
        except NoRegionError as error:
            variable = env_name("aws_region")
            raise ConfigurationError(
                f"llm_provider 'bedrock' needs a region: set {variable} (or AWS_REGION)", field=variable
            ) from error
        guardrail = (
            (settings.bedrock_guardrail_id, settings.bedrock_guardrail_version)
            if settings.bedrock_guardrail_id
            else None
        )
        return cls(
            client,
            max_output_tokens=settings.max_output_tokens,
            guardrail=guardrail,
            header_hooks=header_hooks,
        )

    async def complete(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        max_output_tokens: int | None = None,
    ) -> Completion:
        """One Converse call, waited for in full."""
        started = time.perf_counter()
        request = self._request(model, messages, tools, max_output_tokens, streaming=False)
        response = await self._call(model, functools.partial(self._client.converse, **request))
        try:
            content = response["output"]["message"]["content"]
            text = [str_field(block["text"]) for block in content if "text" in block]
            calls = tuple(
                ToolCall.checked(use["toolUseId"], use["name"], json.dumps(use["input"]))
                for block in content
                if (use := block.get("toolUse")) is not None
            )
            finish_reason = _finish_reason(response["stopReason"])
            usage = _token_usage(response.get("usage"))
        except SHAPE_ERRORS as error:
            raise malformed_answer() from error
        return finished(model, "".join(text) if text else None, calls, finish_reason, usage, started)

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        max_output_tokens: int | None = None,
    ) -> AsyncGenerator[TextDelta | Progress | Completion, None]:
        """One ConverseStream call: :class:`TextDelta` pieces (:data:`PROGRESS` for tool-use pieces), then
        the whole :class:`Completion`."""
        started = time.perf_counter()
        request = self._request(model, messages, tools, max_output_tokens, streaming=True)
        handoff = _Handoff(asyncio.get_running_loop(), STREAM_BUFFER)
        self._in_thread(functools.partial(self._pump, request, handoff))
        turn = _StreamedTurn()
        try:
            while (event := await handoff.get()) is not _END:
                if isinstance(event, _SDK_ERRORS):
                    _raise_failure(event, model)
                if isinstance(event, Exception):
                    raise event
                try:
                    piece = turn.add(event)
                except SHAPE_ERRORS as error:
                    raise malformed_answer() from error
                if piece is not None:
                    yield piece
        finally:
            handoff.stop()
        if turn.stop_reason is None:
            raise ModelError("the Bedrock stream ended before its messageStop event", retryable=True)
        try:
            completion = turn.completion(model, started)
        except SHAPE_ERRORS as error:
            raise malformed_answer() from error
        yield completion

    async def embed(self, texts: Sequence[str], *, model: str, dimensions: int) -> list[list[float]]:
        """Embeddings of ``texts``, in order: one Titan Text Embeddings v2 call per text, normalized."""
        started = time.perf_counter()
        limit = asyncio.Semaphore(EMBED_CONCURRENCY)

        async def one(text: str) -> tuple[list[float], int]:
            async with limit:
                raw = await self._call(model, functools.partial(self._titan, model, text, dimensions))
            try:
                data = json.loads(raw)
                return [float(x) for x in data["embedding"]], int(data.get("inputTextTokenCount") or 0)
            except SHAPE_ERRORS as error:
                raise malformed_answer() from error

        embedded = await asyncio.gather(*(one(text) for text in texts))
        tokens = sum(count for _, count in embedded)
        log_usage("embeddings", model, TokenUsage(prompt_tokens=tokens, total_tokens=tokens), started)
        return [vector for vector, _ in embedded]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _request(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        max_output_tokens: int | None,
        *,
        streaming: bool,
    ) -> dict[str, Any]:
        """The Converse request; ``max_output_tokens`` (the agent's cap, which budgets held) else the
        default. The guardrail of a stream is applied in ``sync`` mode: Bedrock then holds each piece of
        output until the guardrail has assessed it, so no text it would block reaches the caller first."""
        system, turns = _conversation(messages)
        request: dict[str, Any] = {
            "modelId": model,
            "messages": turns,
            "inferenceConfig": {"maxTokens": max_output_tokens or self._max_output},
        }
        if system:
            request["system"] = system
        if tools:  # omitted when there are none: Converse rejects an empty tool list
            request["toolConfig"] = {"tools": [_tool_spec(tool) for tool in tools]}
        if self._guardrail is not None:
            identifier, version = self._guardrail
            config = {"guardrailIdentifier": identifier, "guardrailVersion": version}
            if streaming:
                config["streamProcessingMode"] = "sync"
            request["guardrailConfig"] = config
        return request

    def _in_thread(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """``fn`` on a pool thread, in the caller's context: its span, for the trace headers."""
        if self._closed:
            raise ModelError("the Bedrock model client is closed")
        context = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(self._executor, context.run, fn)

    async def _call(self, model: str, fn: Callable[[], T]) -> T:
        try:
            return await self._in_thread(fn)
        except _SDK_ERRORS as error:
            _raise_failure(error, model)

    def _titan(self, model: str, text: str, dimensions: int) -> bytes:
        """On a pool thread: one Titan Text Embeddings v2 call, its body read (the read blocks too)."""
        body = json.dumps({"inputText": text, "dimensions": dimensions, "normalize": True})
        response = self._client.invoke_model(
            modelId=model, body=body, contentType="application/json", accept="application/json"
        )
        return bytes(response["body"].read())

    def _pump(self, request: dict[str, Any], handoff: _Handoff) -> None:
        """On a pool thread: start the stream and hand over its events, then ``_END`` or the failure.

        The thread that reads the stream closes it, however it ends, so a consumer that stopped early
        frees the HTTP connection at the next event instead of leaving it half read.
        """
        if handoff.stopped:  # the consumer left while the call waited for a thread
            return
        stream = None
        try:
            stream = self._client.converse_stream(**request)["stream"]
            for event in stream:
                if not handoff.put(event):
                    return
            handoff.put(_END)
        except Exception as error:  # noqa: BLE001 - handed over: the consumer raises it, or waits forever
            handoff.put(error)
        finally:
            if stream is not None:
                stream.close()


class _Handoff:
    """Events from a worker thread to the event loop: at most ``bound`` waiting, and a stop signal back.

    The thread takes a slot per event and the consumer frees it, so the thread blocks while ``bound``
    events wait; :meth:`stop` frees it at once to see that nobody wants more.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, bound: int) -> None:
        self._loop = loop
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._slots = threading.Semaphore(bound)
        self.stopped = False

    def put(self, item: Any) -> bool:
        """On the thread: hand ``item`` over once a slot is free; False when the consumer has stopped."""
        self._slots.acquire()
        if self.stopped:
            return False
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody will read it
            return False
        return True

    async def get(self) -> Any:
        item = await self._events.get()
        self._slots.release()
        return item

    def stop(self) -> None:
        """On the loop: no more events are wanted (the extra slot wakes a thread waiting for one)."""
        self.stopped = True
        self._slots.release()


@dataclass
class _StreamedTurn:
    """A streamed answer's text, tool calls (by content block), stop reason and usage, as events arrive.

    ``streamed`` counts the events that carried a piece of the answer (text, or a piece of a tool's input):
    each is sent for at least one generated token, so reported output below it is raised to it
    (:func:`~agent_runtime.llm.finished`).
    """

    text: list[str] = field(default_factory=list)
    calls: dict[int, ToolCallParts] = field(default_factory=dict)
    stop_reason: Any = None
    """As the service sent it: checked when the turn is complete."""
    usage: TokenUsage = field(default_factory=TokenUsage)
    streamed: int = 0

    def add(self, event: Mapping[str, Any]) -> TextDelta | Progress | None:
        """Take one ConverseStream event; the text it adds, :data:`PROGRESS` for a piece of a tool call,
        else ``None``. The text is checked now, since it is passed on at once; the tool calls' fields and
        the stop reason when the turn is complete (:meth:`completion`)."""
        if "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block["delta"]
            if text := delta.get("text"):
                self.text.append(str_field(text))
                self.streamed += 1
                return TextDelta(text)
            if "toolUse" in delta:
                part = self.calls.setdefault(block["contentBlockIndex"], ToolCallParts())
                arguments = delta["toolUse"].get("input") or ""
                part.arguments.append(arguments)
                if arguments:
                    self.streamed += 1
                return PROGRESS
        elif "contentBlockStart" in event:
            use = event["contentBlockStart"]["start"].get("toolUse")
            if use is not None:
                index = event["contentBlockStart"]["contentBlockIndex"]
                self.calls[index] = ToolCallParts(use["toolUseId"], use["name"])
                return PROGRESS
        elif "messageStop" in event:
            self.stop_reason = event["messageStop"]["stopReason"]
        elif "metadata" in event:
            self.usage = _token_usage(event["metadata"].get("usage"))
        return None

    def completion(self, model: str, started: float) -> Completion:
        calls = tuple(part.call() for _, part in sorted(self.calls.items()))
        content = "".join(self.text) if self.text else None
        finish_reason = _finish_reason(self.stop_reason)
        return finished(model, content, calls, finish_reason, self.usage, started, streamed=self.streamed)


def _conversation(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Converse's ``system`` blocks and alternating user/assistant turns of OpenAI-style messages.

    System (and developer) messages go to ``system`` wherever they stand. Tool results are user content
    (``toolResult`` blocks), and consecutive messages of one role become one turn, since Converse wants
    turns to alternate: the results of one step's tool calls are one user turn. Blank text is left out,
    as Converse refuses it.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            if text := _text(message.get("content")).strip():
                system.append({"text": text})
            continue
        blocks = _blocks(message)
        if not blocks:
            continue
        turn_role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    """The content blocks of one user, assistant or tool message."""
    text = _text(message.get("content"))
    if message.get("role") == "tool":
        result: dict[str, Any] = {"toolUseId": message.get("tool_call_id"), "content": [{"text": text}]}
        if _tool_failed(text):
            result["status"] = "error"
        return [{"toolResult": result}]
    blocks: list[dict[str, Any]] = [{"text": text}] if text.strip() else []
    if message.get("role") == "assistant":
        blocks.extend(
            {
                "toolUse": {
                    "toolUseId": call["id"],
                    "name": call["function"]["name"],
                    "input": _tool_input(call["function"].get("arguments")),
                }
            }
            for call in message.get("tool_calls") or ()
        )
    return blocks


def _text(content: Any) -> str:
    """A message's text: a string, or OpenAI content parts (their text joined)."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _tool_input(arguments: str | None) -> dict[str, Any]:
    """A call's arguments as the JSON object Converse requires. Arguments that are not one (broken JSON,
    which the runtime refused to run) go back as ``{}``: the tool result after them tells the model why."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tool_failed(content: str) -> bool:
    """Whether a tool message is the runtime's failure report, ``{"error": {"code": ..., ...}}``: sent with
    ``status: error``. Success is the service's default and is not sent, because only some models
    (Claude, Nova) accept the field."""
    if not content.startswith('{"error"'):
        return False
    try:
        value = json.loads(content)
    except ValueError:
        return False
    return isinstance(value, dict) and list(value) == ["error"] and isinstance(value["error"], dict)


def _tool_spec(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool as a Converse ``toolSpec``."""
    function = tool["function"]
    spec: dict[str, Any] = {
        "name": function["name"],
        "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def _finish_reason(stop_reason: Any) -> str | None:
    """OpenAI's ``finish_reason`` for a ``stopReason`` (a :class:`TypeError` if it is not a string)."""
    reason = optional_str_field(stop_reason)
    return _FINISH_REASONS.get(reason, reason) if reason else None


def _token_usage(usage: Mapping[str, Any] | None) -> TokenUsage:
    if not usage:
        return TokenUsage()
    prompt, completion = usage.get("inputTokens") or 0, usage.get("outputTokens") or 0
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=usage.get("totalTokens") or prompt + completion,
    )


def _add_headers(hooks: tuple[HeaderHook, ...], request: Any, **_: Any) -> None:
    """botocore's ``before-sign`` event: the runtime's headers (trace context) on every request. botocore
    leaves ``traceparent`` out of the signature, so proxies that rewrite it do not break the signature."""
    headers: dict[str, str] = {}
    for hook in hooks:
        hook(headers)
    for name, value in headers.items():
        del request.headers[name]  # botocore's headers append on assignment
        request.headers[name] = value


def _raise_failure(error: Exception, model: str) -> NoReturn:
    """Raise what a boto3 failure means to the runtime."""
    if isinstance(error, ClientError):  # an error response, or an exception event of a stream
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "UnknownError")
        code = code[:1].upper() + code[1:]  # a stream's exception events are camelCase
        message = f"Bedrock answered {code} for model '{model}': {details.get('Message') or 'no details'}"
        if code in _HINTS:
            message += f" ({_HINTS[code]})"
        raise ModelError(message, retryable=code in RETRYABLE_ERRORS) from error
    if isinstance(error, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        raise ConfigurationError(
            f"no usable AWS credentials to call Bedrock ({error}): llm_auth 'aws' takes them from the "
            "environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity token) "
            "or the execution role"
        ) from error
    if isinstance(error, ParamValidationError):
        raise ModelError(f"the request to Bedrock model '{model}' is invalid: {error}") from error
    if isinstance(error, (ReadTimeoutError, ConnectTimeoutError, urllib3.exceptions.TimeoutError)):
        raise ModelError("Bedrock timed out", retryable=True) from error
    if isinstance(error, (BotoConnectionError, HTTPClientError, urllib3.exceptions.HTTPError)):
        raise ModelError(
            f"Bedrock is unreachable or dropped the connection: {error}", retryable=True
        ) from error
    if isinstance(error, (ParserError, ResponseParserError)):
        raise malformed_answer() from error
    raise ModelError(f"the call to Bedrock model '{model}' failed: {error}") from error
