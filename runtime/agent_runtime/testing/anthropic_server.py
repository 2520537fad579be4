"""A scripted server speaking Anthropic's Messages API: ``POST /v1/messages``, plain JSON and server-sent
events (the API's event sequence), tool use, usage and the API's error bodies, driven by the same
:class:`~agent_runtime.testing.script.Script` and :class:`~agent_runtime.testing.faults.Faults` as the
OpenAI-compatible :class:`~agent_runtime.testing.server.ScriptedModelServer`::

    with ScriptedAnthropicServer(script, api_key="sk-ant-test") as anthropic:
        settings = Settings(llm_provider="anthropic", llm_endpoint=anthropic.url, llm_api_key="sk-ant-test")
        ...
        assert anthropic.requests[0]["tools"][0]["name"] == "weather"

It is also a fake for Anthropic's own SDK (``anthropic.Anthropic(base_url=anthropic.url, ...)``).

Requests are checked as the API checks them where a client's translation can go wrong, with the API's
messages: the key (``x-api-key``, or ``Authorization: Bearer`` as the 2.x SDKs send it), the
``anthropic-version`` header (2026-10-21 refuses the sampling parameters 2023-06-01 took), the body's schema
(``max_tokens`` required, no unknown fields, no ``system`` role, tools with an object ``input_schema``), no
empty or blank content, every ``tool_use`` answered by a ``tool_result`` first thing in the next user turn
and every ``tool_result`` answering one. Roles must alternate strictly: the API merges consecutive turns of
one role, but a client that sends them alternating (as the API's docs ask) works with both.

A script rule's ``status`` answers with the API's error for it (``rate_limit_error`` for 429,
``overloaded_error`` for 529, ``api_error`` for other 5xx, ...), with ``retry-after`` on 429 and 529. A
streamed request meets a scripted 5xx as the API reports failures once a response has begun: the reply's
text streams, then an ``error`` event ends the stream. Injected faults are the HTTP errors, slow answers and
malformed bodies of the OpenAI-compatible server, in Anthropic's shapes. Tokens are counted as that
server counts them (words); an answer longer than ``max_tokens`` is cut there (``stop_reason: max_tokens``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_runtime.testing.faults import Fault, Faults
from agent_runtime.testing.script import Reply, Script
from agent_runtime.testing.serve import ServerThread

# The scripted OpenAI-compatible server's token counting and stream chunking, so both count and stream alike.
from agent_runtime.testing.server import _pieces, _usage

API_VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
"""The ``anthropic-version`` values the API accepts."""
SAMPLING = ("temperature", "top_k", "top_p")
"""Parameters API version 2026-10-21 removed: sent with it, any value is a 400."""
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
"""The ``error.type`` of each status; other 4xx are ``invalid_request_error``, other 5xx ``api_error``."""


class _Unscriptable(Exception):
    """The script asks for an answer the API cannot give (tool arguments that are not a JSON object)."""


def _as_blocks(value: Any) -> Any:
    """Content given as a string is one text block, as the API reads it."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}] if value else []
    return value


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cache_control: dict[str, Any] | None = None


class _Text(_Block):
    type: Literal["text"]
    text: str


class _ToolUse(_Block):
    type: Literal["tool_use"]
    id: str = Field(pattern=r"^[a-zA-Z0-9_-]+$")
    name: str
    input: dict[str, Any]


class _ToolResult(_Block):
    type: Literal["tool_result"]
    tool_use_id: str
    content: Annotated[list[_Text], BeforeValidator(_as_blocks)] = []
    is_error: bool = False


_Content = Annotated[
    list[Annotated[_Text | _ToolUse | _ToolResult, Field(discriminator="type")]], BeforeValidator(_as_blocks)
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant"]
    content: _Content


class _InputSchema(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["object"]


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    input_schema: _InputSchema
    cache_control: dict[str, Any] | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str
    max_tokens: int = Field(ge=1)
    messages: list[_Message]
    system: Annotated[list[_Text], BeforeValidator(_as_blocks)] = []
    tools: list[_Tool] = []
    stream: bool = False
    # Accepted as the API accepts them (the sampling ones up to version 2023-06-01); a script ignores them.
    metadata: dict[str, Any] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    tool_choice: dict[str, Any] | None = None
    top_k: int | None = None
    top_p: float | None = None


def create_anthropic_app(
    script: Script,
    requests: list[Any] | None = None,
    faults: dict[str, Faults] | None = None,
    headers: list[dict[str, str]] | None = None,
    *,
    api_key: str | None = None,
    retry_after: float = 1.0,
) -> Starlette:
    """The server as an ASGI app. Every request body is appended to ``requests`` (refused ones too) and
    its headers to ``headers`` when given (nothing is kept otherwise); ``faults`` maps a model (or ``"*"``)
    to the faults injected into its calls; ``api_key``, when given, is the only key accepted;
    ``retry_after`` is the ``retry-after`` of scripted 429s and 529s (an injected 429 sends its
    :class:`Faults`' own)."""
    injected = faults if faults is not None else {}
    received = itertools.count(1)  # requests so far, refused ones too: each message's id

    async def messages(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the request body is not valid JSON")
        number = next(received)
        if requests is not None:
            requests.append(body)
        if headers is not None:
            headers.append(dict(request.headers))
        if (refusal := _header_problem(request.headers, api_key)) is not None:
            return refusal
        try:
            parsed = _Request.model_validate(body)
        except ValidationError as invalid:
            return _error(400, _first_problem(invalid))
        if (problem := _version_problem(request.headers["anthropic-version"], body)) is not None:
            return _error(400, problem)
        if (problem := _turn_problem(parsed)) is not None:
            return _error(400, problem)
        plan = injected.get(parsed.model) or injected.get("*")
        fault = plan.draw() if plan else None
        if fault is not None and plan is not None:
            return await _faulty(fault, plan)
        conversation = _script_messages(parsed)
        reply = script.reply(conversation)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        failure = reply.status if reply.status != 200 else None
        if failure is not None and not (parsed.stream and failure >= 500):
            wait = retry_after if failure in (429, 529) else None
            return _error(failure, f"scripted failure (HTTP {failure})", wait)
        try:
            message = _message(parsed, conversation, reply, f"msg_scripted_{number}", failure)
        except _Unscriptable as unusable:
            return _error(500, str(unusable))
        if parsed.stream:
            return StreamingResponse(
                _events(message, reply.chunk_sizes, failure), media_type="text/event-stream"
            )
        return JSONResponse(message)

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


def _header_problem(headers: Mapping[str, str], api_key: str | None) -> Response | None:
    """A missing or wrong key (``x-api-key``, else a bearer token, as the 2.x SDKs send it) or version."""
    key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
    if not key:
        return _error(401, "x-api-key header is required")
    if api_key is not None and key != api_key:
        return _error(401, "invalid x-api-key")
    version = headers.get("anthropic-version")
    if not version:
        return _error(400, "anthropic-version: header is required")
    if version not in API_VERSIONS:
        return _error(400, f"anthropic-version: invalid version {version!r}")
    return None


def _version_problem(version: str, body: Mapping[str, Any]) -> str | None:
    removed = [name for name in SAMPLING if name in body] if version >= "2026-10-21" else []
    return f"{removed[0]}: Extra inputs are not permitted" if removed else None


def _first_problem(invalid: ValidationError) -> str:
    """The first schema error as the API words it: ``<dotted location>: <message>``."""
    first = invalid.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {first['msg']}" if location else first["msg"]


def _turn_problem(request: _Request) -> str | None:
    """What the API refuses in a valid schema: blank text, duplicate tools, roles that do not alternate,
    empty turns, tool blocks in the wrong turn, and tool uses and results that do not answer each other."""
    for position, text in enumerate(request.system):
        if not text.text.strip():
            return f"system.{position}: text content blocks must contain non-whitespace text"
    names = [tool.name for tool in request.tools]
    if len(set(names)) != len(names):
        return "tools: Tool names must be unique."
    asked: set[str] = set()  # the tool_use ids of the previous (assistant) turn
    last = len(request.messages) - 1
    for index, message in enumerate(request.messages):
        blocks = message.content
        if index and message.role == request.messages[index - 1].role:
            return (
                'messages: roles must alternate between "user" and "assistant", but found multiple '
                f'"{message.role}" roles in a row'
            )
        if not blocks and not (message.role == "assistant" and index == last):
            return (
                f"messages.{index}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        for position, block in enumerate(blocks):
            if (problem := _block_problem(message.role, blocks, position, asked)) is not None:
                return f"messages.{index}{problem}"
        answered = {block.tool_use_id for block in blocks if isinstance(block, _ToolResult)}
        if missing := asked - answered:
            return (
                f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(sorted(missing))}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )
        asked = {block.id for block in blocks if isinstance(block, _ToolUse)}
    return None


def _block_problem(role: str, blocks: list[Any], position: int, asked: set[str]) -> str | None:
    """What is wrong with one block of a turn, located after ``messages.<index>``."""
    block = blocks[position]
    where = f".content.{position}"
    if isinstance(block, _Text) and not block.text.strip():
        return f"{where}: text content blocks must contain non-whitespace text"
    if isinstance(block, _ToolUse) and role != "assistant":
        return f"{where}: `tool_use` blocks can only be in `assistant` messages"
    if not isinstance(block, _ToolResult):
        return None
    if role != "user":
        return f"{where}: `tool_result` blocks can only be in `user` messages"
    if position and not isinstance(blocks[position - 1], _ToolResult):
        return ": `tool_result` blocks must come first in the user message content, before any text"
    if block.tool_use_id not in asked:
        return (
            f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {block.tool_use_id}. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous message."
        )
    return None


def _script_messages(request: _Request) -> list[dict[str, Any]]:
    """The conversation in the OpenAI shape scripts read: the system text first, tool results as ``tool``
    messages (so rules with ``on="tool"`` match them, and unmatched results are echoed)."""
    conversation: list[dict[str, Any]] = []
    if request.system:
        conversation.append({"role": "system", "content": _text(request.system)})
    for message in request.messages:
        results = [block for block in message.content if isinstance(block, _ToolResult)]
        conversation.extend(
            {"role": "tool", "tool_call_id": result.tool_use_id, "content": _text(result.content)}
            for result in results
        )
        if (text := _text(message.content)) or not results:
            conversation.append({"role": message.role, "content": text})
    return conversation


def _text(blocks: list[Any]) -> str:
    return "".join(block.text for block in blocks if isinstance(block, _Text))


def _message(
    request: _Request, conversation: list[dict[str, Any]], reply: Reply, message_id: str, failure: int | None
) -> dict[str, Any]:
    """The answer, as a Message object, cut at ``max_tokens``; a failing reply keeps only its text (streamed
    before the error)."""
    stop_reason = "tool_use" if reply.tool_calls else "end_turn"
    usage = _usage(conversation, reply)
    if usage["completion_tokens"] > request.max_tokens:
        words = re.findall(r"\s*\S+", reply.content or "")[: request.max_tokens]
        reply, stop_reason = dataclasses.replace(reply, content="".join(words), tool_calls=()), "max_tokens"
        usage = _usage(conversation, reply)
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.content}] if reply.content else []
    if failure is None:
        content.extend(_tool_use(*call) for call in reply.tool_calls)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": usage["completion_tokens"],
        },
    }


def _tool_use(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    try:
        tool_input = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        tool_input = None
    if not isinstance(tool_input, dict):
        raise _Unscriptable(
            f"the script's arguments for {name} are not a JSON object, which the Messages API cannot carry: "
            f"{arguments!r}"
        )
    return {
        "type": "tool_use",
        "id": call_id.replace("call_", "toolu_", 1),
        "name": name,
        "input": tool_input,
    }


async def _events(
    message: dict[str, Any], chunk_sizes: tuple[int, ...], failure: int | None
) -> AsyncIterator[str]:
    """``message`` as the API streams it: ``message_start`` (input usage), a ``ping``, each block's start,
    deltas (text in pieces, tool input as JSON pieces) and stop, ``message_delta`` (stop reason, output
    usage), ``message_stop``; or, for a ``failure``, an ``error`` event after the text."""
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    yield _event({"type": "message_start", "message": start})
    yield _event({"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opened, deltas = {"type": "text", "text": ""}, _pieces(block["text"], chunk_sizes)
            kind, key = "text_delta", "text"
        else:
            arguments = json.dumps(block["input"])
            half = len(arguments) // 2
            opened, deltas = {**block, "input": {}}, ["", arguments[:half], arguments[half:]]
            kind, key = "input_json_delta", "partial_json"
        yield _event({"type": "content_block_start", "index": index, "content_block": opened})
        for piece in deltas:
            yield _event({"type": "content_block_delta", "index": index, "delta": {"type": kind, key: piece}})
        yield _event({"type": "content_block_stop", "index": index})
    if failure is not None:
        yield _event(_error_body(failure, f"scripted failure (HTTP {failure})"))
        return
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield _event(
        {
            "type": "message_delta",
            "delta": delta,
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        }
    )
    yield _event({"type": "message_stop"})


def _event(data: dict[str, Any]) -> str:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
    return JSONResponse(_error_body(status, message), status, headers=headers)


async def _faulty(fault: Fault, plan: Faults) -> Response:
    if fault == "429":
        return _error(429, "rate limited (injected)", plan.retry_after)
    if fault == "500":
        return _error(500, "injected failure")
    if fault == "timeout":
        await asyncio.sleep(plan.timeout_delay)
    return Response(
        '{"id": "msg_broken", "type": "message", "content": [{"type": "te', media_type="application/json"
    )


class ScriptedAnthropicServer(ServerThread):
    """The Messages API on a free loopback port, in a thread; ``url`` is what ``llm_endpoint`` takes.

    ``faults`` (model or ``"*"`` -> :class:`Faults`) may be changed while it runs; ``requests`` and
    ``headers`` record each call's body and headers unless ``record`` is off, as for a server that runs
    for hours (``agentstage dev``).
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        api_key: str | None = None,
        retry_after: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
    ) -> None:
        self.requests: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.faults: dict[str, Faults] = {}
        app = create_anthropic_app(
            script or Script(),
            self.requests if record else None,
            self.faults,
            self.headers if record else None,
            api_key=api_key,
            retry_after=retry_after,
        )
        super().__init__(app, host=host, port=port)
