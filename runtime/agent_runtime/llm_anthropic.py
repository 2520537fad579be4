"""Anthropic's Messages API (``POST {llm_endpoint}/v1/messages``) as a :class:`~agent_runtime.llm.ChatModel`.

The runtime speaks OpenAI's shapes; this module translates them both ways, faithfully:

* system (and developer) messages become the top-level ``system`` blocks: the API has no system role;
* an assistant's ``tool_calls`` become ``tool_use`` blocks whose ``input`` is the parsed arguments;
* ``tool`` messages become ``tool_result`` blocks of a user message, and consecutive messages of one role
  are merged into one turn, so several tool results answer their calls in the single user turn the API
  requires right after the assistant's;
* tools become ``{name, description, input_schema}``; ``max_tokens`` (required) is the agent's cap, else
  the default;
* answers: text blocks joined, ``tool_use`` blocks as :class:`ToolCall` with JSON arguments, ``stop_reason``
  in OpenAI's words, usage with prompt-cache reads and writes counted as prompt tokens (they are input).

Streaming reads the API's server-sent events (``message_start`` ... ``message_stop``); an ``error`` event
mid-stream is a :class:`ModelError`, retryable when the API was overloaded, rate limited or failing, and so
is a stream that ends before its ``message_delta`` (the stop reason and the output usage) and its
``message_stop``. HTTP goes through the same :class:`~agent_runtime.llm.ModelTransport` as the OpenAI client
(pooled session, proxy, resend of a dropped pooled connection, statuses and transport failures mapped to
:class:`ModelError`).

The API has no embeddings: :meth:`AnthropicModel.embed` refuses, saying what to configure instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.errors import ConfigurationError, ModelError
from agent_runtime.llm import (
    PROGRESS,
    SHAPE_ERRORS,
    Completion,
    HeaderHook,
    ModelTransport,
    Progress,
    TextDelta,
    ToolCall,
    ToolCallParts,
    finished,
    json_body,
    malformed_answer,
    optional_str_field,
    server_sent_events,
    str_field,
)
from agent_runtime.memory.base import Message
from agent_runtime.settings import Settings
from agent_runtime.trace import TokenUsage

RETRYABLE_STATUS = frozenset({408, 409, 429, *range(500, 600)})
"""What Anthropic's SDK retries: timeouts, conflicts, rate limits, every 5xx (529 "overloaded" included)."""
RETRYABLE_ERRORS = frozenset({"rate_limit_error", "overloaded_error", "api_error"})
"""Error types of a mid-stream ``error`` event that a retry may fix (the 429, 529 and 500 of a stream)."""
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}
"""OpenAI's ``finish_reason`` for Anthropic's ``stop_reason``: an answer cut short stays ``length`` and one the
model's safety measures ended ``content_filter``; any other is ``stop`` (:func:`~agent_runtime.llm.finished`)."""
PROMPT_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
"""The input the API bills, split in three when prompt caching is on."""


class AnthropicModel:
    """Chat over Anthropic's Messages API, one long-lived HTTP session per process."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        version: str = "2023-06-01",
        max_output_tokens: int = 4096,
        timeout_seconds: float = 60.0,
        header_hooks: Sequence[HeaderHook] = (),
    ) -> None:
        """Builds no connection: the session opens with the first call."""
        base = base_url.rstrip("/")
        self._url = f"{base}/v1/messages"
        self._headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": version,
        }
        if api_key is not None:  # none: a gateway in front of the API adds it
            self._headers["x-api-key"] = api_key
        self._max_output = max_output_tokens
        self._transport = ModelTransport(
            base,
            timeout_seconds=timeout_seconds,
            header_hooks=header_hooks,
            retryable_status=RETRYABLE_STATUS,
        )

    @classmethod
    def from_settings(cls, settings: Settings, header_hooks: Sequence[HeaderHook] = ()) -> AnthropicModel:
        """The model ``llm_*`` settings describe; an authentication the API cannot take is refused here,
        at startup, rather than as a 401 on every call."""
        if settings.llm_auth not in ("api_key", "none"):
            raise ConfigurationError(
                "llm_provider=anthropic authenticates with an API key: set llm_auth=api_key and "
                "llm_api_key (or llm_auth=none behind a gateway that adds the key), not llm_auth="
                f"{settings.llm_auth}"
            )
        if settings.llm_auth == "api_key" and not settings.llm_api_key:
            raise ConfigurationError(
                "llm_provider=anthropic with llm_auth=api_key needs llm_api_key (AGENTSTAGE_LLM_API_KEY)"
            )
        return cls(
            settings.llm_endpoint,
            settings.llm_api_key if settings.llm_auth == "api_key" else None,
            version=settings.anthropic_version,
            max_output_tokens=settings.max_output_tokens,
            timeout_seconds=settings.llm_timeout_seconds,
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
        """One message, waited for in full."""
        started = time.perf_counter()
        body = self._body(model, messages, tools, max_output_tokens)
        async with self._transport.post(self._url, body, self._headers) as response:
            data = await json_body(response)
        try:
            blocks = data["content"]
            texts = [str_field(block["text"]) for block in blocks if block["type"] == "text"]
            calls = tuple(
                ToolCall.checked(block["id"], block["name"], json.dumps(block["input"]))
                for block in blocks
                if block["type"] == "tool_use"
            )
            usage = _usage(data["usage"])
            finish_reason = _finish_reason(data.get("stop_reason"))
        except SHAPE_ERRORS as error:
            raise malformed_answer() from error
        return finished(model, "".join(texts) if texts else None, calls, finish_reason, usage, started)

    async def stream(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        max_output_tokens: int | None = None,
    ) -> AsyncGenerator[TextDelta | Progress | Completion, None]:
        """A streamed message: :class:`TextDelta` pieces (:data:`PROGRESS` for tool-use pieces), then the
        whole :class:`Completion`. A stream that ends before its stop reason and ``message_stop`` was cut
        short, however cleanly its connection closed: a malformed answer, whose output usage (which
        ``message_delta`` carries) is not known."""
        started = time.perf_counter()
        body = self._body(model, messages, tools, max_output_tokens)
        body["stream"] = True
        message = _StreamedMessage()
        async with self._transport.post(self._url, body, self._headers) as response:
            try:
                async for _, event in server_sent_events(response):
                    if (piece := message.apply(event)) is not None:
                        yield piece
                if not message.stopped or message.stop_reason is None:  # a truncated answer
                    raise malformed_answer()
                completion = message.completion(model, started)
            except SHAPE_ERRORS as error:
                raise malformed_answer() from error
        yield completion

    async def embed(self, texts: Sequence[str], *, model: str, dimensions: int) -> list[list[float]]:
        """Always fails: Anthropic's API has no embeddings endpoint."""
        raise ModelError(
            "Anthropic's API has no embeddings, which vector memory needs (the memory_search tool, memory "
            "recall, knowledge ingestion): run agents that use it with llm_provider=openai, azure_openai "
            "or bedrock"
        )

    async def close(self) -> None:
        await self._transport.close()

    def _body(
        self,
        model: str,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        max_output_tokens: int | None,
    ) -> dict[str, Any]:
        """The request body; ``max_output_tokens`` (the agent's cap, which budgets held) else the default."""
        try:
            system, turns = translate(messages)
            specs = [_tool(spec["function"]) for spec in tools]
        except (AttributeError, KeyError, TypeError) as error:
            raise ModelError(
                "the conversation cannot be sent to Anthropic's Messages API: a message or tool is "
                f"malformed ({type(error).__name__}: {error})"
            ) from error
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_output_tokens or self._max_output,
            "messages": turns,
        }
        if system:
            body["system"] = system
        if specs:
            body["tools"] = specs
        return body


def translate(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` blocks and the ``messages`` turns of the API for OpenAI-style ``messages``.

    System messages are lifted out wherever they stand (the API takes them only up front). Consecutive
    messages of one role are merged into one turn, so turns alternate as the API's docs ask: the tool
    results of one step become the one user turn after the calls, its ``tool_result`` blocks first, as the
    API requires.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_text_blocks(content))
            continue
        if role == "user":
            blocks = _text_blocks(content)
        elif role == "assistant":
            blocks = [*_text_blocks(content), *(_tool_use(call) for call in message.get("tool_calls") or ())]
        elif role == "tool":
            role, blocks = "user", [_tool_result(message["tool_call_id"], content)]
        else:
            raise ModelError(f"a message of role {role!r} cannot be sent to Anthropic's Messages API")
        if not blocks:  # the API refuses empty turns
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    """Text blocks of OpenAI content (a string or text parts); blank text is left out, as the API refuses
    text blocks without any non-whitespace character."""
    texts = [content] if isinstance(content, str) else [_part_text(part) for part in content or ()]
    return [{"type": "text", "text": text} for text in texts if text.strip()]


def _part_text(part: Mapping[str, Any]) -> str:
    if part.get("type") != "text":
        raise ModelError(
            f"content parts of type {part.get('type')!r} cannot be sent to Anthropic's Messages API: "
            "only text parts are supported"
        )
    return str(part["text"])


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call["function"]
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": _input(function)}


def _input(function: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments as the JSON object the API takes. Arguments that are not one (a malformed call,
    which the tool loop answered with an error result rather than running the tool) are sent as ``{}``:
    the API accepts nothing else, and the result beside it says what was wrong."""
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        return {}
    return arguments if isinstance(arguments, dict) else {}


def _tool_result(tool_use_id: str, content: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id}
    text = "".join(part["text"] for part in _text_blocks(content))
    if text:  # an empty result is sent without content: the API refuses empty text
        block["content"] = text
    return block


def _tool(function: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function definition as an Anthropic tool."""
    tool: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        tool["description"] = function["description"]
    return tool


def _finish_reason(stop_reason: Any) -> str | None:
    """OpenAI's ``finish_reason`` for a ``stop_reason`` (a :class:`TypeError` if it is not a string)."""
    reason = optional_str_field(stop_reason)
    return FINISH_REASONS.get(reason, reason) if reason is not None else None


def _usage(usage: Mapping[str, Any]) -> TokenUsage:
    prompt = sum(usage.get(name) or 0 for name in PROMPT_USAGE)
    completion = usage.get("output_tokens") or 0
    return TokenUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


@dataclass
class _StreamedMessage:
    """A message assembled from the stream's events, as they arrive.

    ``message_start`` carries the input usage, ``content_block_start`` opens a text or ``tool_use`` block
    (its id and name), ``content_block_delta`` adds text or a piece of the tool input's JSON,
    ``message_delta`` the stop reason and the output usage (cumulative), ``message_stop`` ends it. ``ping``
    and event types this client does not know are skipped, as the API's versioning policy asks.

    ``streamed`` counts the events that carried a piece of the answer (text, or a piece of a tool's input):
    each is sent for at least one generated token, so reported output below it is raised to it
    (:func:`~agent_runtime.llm.finished`).
    """

    texts: list[str] = field(default_factory=list)
    calls: dict[int, ToolCallParts] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    stop_reason: Any = None
    """As the API sent it: checked when the message is complete."""
    stopped: bool = False
    streamed: int = 0

    def apply(self, event: Mapping[str, Any]) -> TextDelta | Progress | None:
        """Take in one event; the text it adds, :data:`PROGRESS` for a piece of a tool call, else ``None``."""
        kind = event["type"]
        if kind == "error":
            raise _stream_error(event)
        if kind == "message_start":
            self._count(event["message"]["usage"])
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "tool_use":
                # The input's JSON arrives in pieces after a start whose input is {}; a start carrying the
                # whole input (and no pieces) counts too, as Anthropic's SDK reads it.
                start = json.dumps(block["input"]) if block.get("input") else ""
                self.calls[event["index"]] = ToolCallParts(block["id"], block["name"], [start])
                if start:
                    self.streamed += 1
                return PROGRESS
            if block["type"] == "text":
                return self._text(block["text"])
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                return self._text(delta["text"])
            if delta["type"] == "input_json_delta":
                self.calls[event["index"]].arguments.append(delta["partial_json"])
                if delta["partial_json"]:  # the first piece is often empty
                    self.streamed += 1
                return PROGRESS
        elif kind == "message_delta":
            self.stop_reason = event["delta"].get("stop_reason") or self.stop_reason
            self._count(event.get("usage") or {})
        elif kind == "message_stop":
            self.stopped = True
        return None

    def completion(self, model: str, started: float) -> Completion:
        """The whole message; the tool calls' fields and the stop reason are checked here (a
        :class:`TypeError` when of the wrong type)."""
        calls = tuple(part.call(no_arguments="{}") for _, part in sorted(self.calls.items()))
        content = "".join(self.texts) if self.texts else None
        finish_reason, usage = _finish_reason(self.stop_reason), _usage(self.usage)
        return finished(model, content, calls, finish_reason, usage, started, streamed=self.streamed)

    def _text(self, text: Any) -> TextDelta | None:
        """The piece of text, checked now, since it is passed on at once."""
        if not str_field(text):
            return None
        self.texts.append(text)
        self.streamed += 1
        return TextDelta(text)

    def _count(self, usage: Mapping[str, Any]) -> None:
        """Usage so far: ``message_delta``'s counts are cumulative and replace ``message_start``'s."""
        self.usage.update({name: value for name, value in usage.items() if isinstance(value, int)})


def _stream_error(event: Mapping[str, Any]) -> ModelError:
    """The :class:`ModelError` of an ``error`` event (``{"type": "error", "error": {"type", "message"}}``)."""
    error = event.get("error")
    error = error if isinstance(error, dict) else {}
    kind, message = error.get("type") or "error", error.get("message") or "no details"
    return ModelError(
        f"the model endpoint failed mid-stream: {kind}: {message}", retryable=kind in RETRYABLE_ERRORS
    )
