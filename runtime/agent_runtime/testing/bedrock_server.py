"""A local Amazon Bedrock Runtime: Converse, ConverseStream and Titan Text Embeddings v2 (InvokeModel) on
Bedrock's REST wire format, so the real boto3 client talks to it as it would to AWS::

    from agent_runtime.testing import BedrockServer, Rule, Script, ScriptedGuardrail

    with BedrockServer(Script([Rule(pattern="hi", reply="hello")]),
                       guardrails=[ScriptedGuardrail("gr-1", blocked_words=("forbidden",))]) as bedrock:
        os.environ.update(bedrock.environment)   # endpoint, fake static credentials, region
        client = boto3.client("bedrock-runtime")
        client.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=[...])
        assert bedrock.calls[0].body["messages"][0]["role"] == "user"

Replies come from the same :class:`~agent_runtime.testing.script.Script` as the scripted OpenAI-compatible
server (user text, or the tool results of the last turn, decide), faults from the same
:class:`~agent_runtime.testing.faults.Faults`. Errors are what Bedrock sends: the HTTP status, an
``x-amzn-ErrorType`` header and ``{"message": ...}``; a stream that fails midway ends with an exception
event (:class:`StreamInterruption`).

It checks what the service checks where a client could get it wrong: a SigV4 ``Authorization`` header
scoped to this region and to the ``bedrock`` service (so the client signed with IAM credentials), a
conversation that starts with the user and alternates roles, a ``toolResult`` for every ``toolUse`` of the
previous assistant turn and for nothing else, a ``toolConfig`` whenever tool blocks appear, blank text, and
``maxTokens`` between 1 and the model's limit. Guardrails are looked up by identifier and version and
applied (:class:`ScriptedGuardrail`); every request is recorded (:class:`BedrockCall`), guardrailConfig
included, so tests can prove a guardrail goes with every call.

Token counts are words, as on the scripted OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_runtime.testing.eventstream import encode_event, encode_exception
from agent_runtime.testing.faults import Faults
from agent_runtime.testing.script import Reply, Script
from agent_runtime.testing.serve import ServerThread
from agent_runtime.testing.server import _pieces, _usage, embed

Operation = Literal["converse", "converse-stream", "invoke"]

DEFAULT_MAX_TOKENS_LIMIT = 8192
TITAN_EMBED_V2 = "amazon.titan-embed-text-v2:0"
TITAN_DIMENSIONS = (256, 512, 1024)
TEST_ACCESS_KEY_ID = "AKIAIOSFODNN7LOCAL01"
TEST_SECRET_ACCESS_KEY = "local/bedrock/secret/access/key/0123456789"

_ERROR_TYPE_NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[^/\s]+/\d{8}/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,\s]+), Signature=[0-9a-f]{64}"
)
_TITAN_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}


@dataclass(frozen=True)
class BedrockCall:
    """One request as the server received it (recorded before it is checked)."""

    operation: Operation
    model_id: str
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class ScriptedGuardrail:
    """A guardrail the server knows: input or output containing a blocked word (case-insensitive) is
    replaced by the canned message and the turn stops with ``guardrail_intervened``, as Bedrock does."""

    identifier: str
    version: str = "DRAFT"
    blocked_words: tuple[str, ...] = ()
    blocked_input_message: str = "Sorry, the model cannot answer this question."
    blocked_output_message: str = "Sorry, the model cannot answer this question."

    def blocks(self, text: str) -> bool:
        return any(re.search(rf"(?i)\b{re.escape(word)}\b", text) for word in self.blocked_words)


@dataclass(frozen=True)
class StreamInterruption:
    """Streams of a model break off after ``after`` events (``messageStart`` included) with a modeled
    exception event, as Bedrock reports failures once the HTTP 200 has been sent; ``exception=None``
    ends the response there instead, as a proxy that cuts a stream does."""

    after: int = 2
    exception: str | None = "modelStreamErrorException"
    message: str = "The model stream was interrupted (injected)."


@dataclass(frozen=True)
class _Answer:
    """The assistant turn to send, whichever way it was decided (script, guardrail, token limit)."""

    text: str | None
    tool_calls: tuple[tuple[str, str, Any], ...]
    stop_reason: str
    usage: dict[str, int]
    chunk_sizes: tuple[int, ...] = ()


class _Refusal(Exception):
    """An error response as Bedrock shapes it."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or _ERROR_TYPES.get(
            status, "InternalServerException" if status >= 500 else "ValidationException"
        )

    def response(self) -> Response:
        headers = {
            "x-amzn-ErrorType": self.error_type + _ERROR_TYPE_NAMESPACE,
            "x-amzn-RequestId": str(uuid.uuid4()),
        }
        return JSONResponse({"message": self.message}, self.status, headers=headers)


def _invalid(message: str) -> _Refusal:
    return _Refusal(400, message)


class BedrockServer(ServerThread):
    """Bedrock Runtime on a free loopback port, in a thread; ``url`` is the client's ``endpoint_url``.

    ``faults`` (model id or ``"*"`` -> :class:`Faults`), ``interruptions`` (model id or ``"*"`` ->
    :class:`StreamInterruption`), ``guardrails`` (identifier -> :class:`ScriptedGuardrail`) and ``pace``
    (seconds between stream events, to stream as slowly as a real model) may be changed while it runs.
    ``calls`` records each call and ``abandoned`` the streams whose client hung up before the last event,
    unless ``record`` is off, as for a server that runs for hours (``agentstage dev``).
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        region: str = "eu-west-1",
        guardrails: Iterable[ScriptedGuardrail] = (),
        max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
    ) -> None:
        self.script = script or Script()
        self._record = record
        self.region = region
        self.max_tokens_limit = max_tokens_limit
        self.guardrails = {guardrail.identifier: guardrail for guardrail in guardrails}
        self.faults: dict[str, Faults] = {}
        self.interruptions: dict[str, StreamInterruption] = {}
        self.pace = 0.0
        self.calls: list[BedrockCall] = []
        self.abandoned: list[BedrockCall] = []
        app = Starlette(
            routes=[
                Route("/model/{model_id:path}/converse", self._converse, methods=["POST"]),
                Route("/model/{model_id:path}/converse-stream", self._converse, methods=["POST"]),
                Route("/model/{model_id:path}/invoke", self._invoke, methods=["POST"]),
            ]
        )
        super().__init__(app, host=host, port=port)

    @property
    def environment(self) -> dict[str, str]:
        """What points an AWS SDK here: the endpoint override, fake static credentials and the region."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
            "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def reset(self) -> None:
        """Forget recorded calls and injected failures (a shared server between tests)."""
        self.calls.clear()
        self.abandoned.clear()
        self.faults.clear()
        self.interruptions.clear()
        self.pace = 0.0

    async def _converse(self, request: Request) -> Response:
        streaming = request.url.path.endswith("/converse-stream")
        try:
            call = await self._accept(request, "converse-stream" if streaming else "converse")
            broken = await self._inject_fault(call.model_id)
            body = call.body
            _check_conversation(body, self.max_tokens_limit)
            guardrail = self._guardrail(body.get("guardrailConfig"), streaming)
            answer = await self._answer(body, guardrail)
        except _Refusal as refusal:
            return refusal.response()
        if not streaming:
            if broken:
                return Response('{"output": {"message": {"role": "assis', media_type="application/json")
            return JSONResponse(_converse_output(answer), headers={"x-amzn-RequestId": str(uuid.uuid4())})
        interruption = self.interruptions.get(call.model_id) or self.interruptions.get("*")
        return StreamingResponse(
            self._frames(call, _stream_events(answer), interruption, broken),
            media_type="application/vnd.amazon.eventstream",
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    async def _invoke(self, request: Request) -> Response:
        try:
            call = await self._accept(request, "invoke")
            broken = await self._inject_fault(call.model_id)
            text, dimensions = _check_titan(call.model_id, call.body)
        except _Refusal as refusal:
            return refusal.response()
        if broken:
            return Response('{"embedding": [0.1, 0.', media_type="application/json")
        vector = embed(text, dimensions)
        return JSONResponse(
            {
                "embedding": vector,
                "embeddingsByType": {"float": vector},
                "inputTextTokenCount": len(text.split()),
            }
        )

    async def _accept(self, request: Request, operation: Operation) -> BedrockCall:
        """Record the request, then check its signature and parse its JSON body."""
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode(errors="replace")
        call = BedrockCall(operation, request.path_params["model_id"], body, dict(request.headers))
        if self._record:
            self.calls.append(call)
        self._check_signature(request.headers.get("authorization"))
        if not isinstance(body, dict):
            raise _Refusal(400, "The request body is not a JSON object.", "SerializationException")
        return call

    def _check_signature(self, authorization: str | None) -> None:
        if not authorization:
            raise _Refusal(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
        signed = _SIGV4.fullmatch(authorization)
        if signed is None:
            raise _Refusal(
                403,
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' of "
                "AWS4-HMAC-SHA256.",
                "IncompleteSignatureException",
            )
        if signed["service"] != "bedrock":
            raise _Refusal(
                403, "Credential should be scoped to correct service: 'bedrock'.", "InvalidSignatureException"
            )
        if signed["region"] != self.region:
            raise _Refusal(
                403,
                f"Credential should be scoped to a valid region, not '{signed['region']}'; "
                f"this endpoint serves '{self.region}'.",
                "InvalidSignatureException",
            )
        if "x-amz-date" not in signed["signed"].split(";"):
            raise _Refusal(
                403, "The request signature does not cover x-amz-date.", "InvalidSignatureException"
            )

    async def _inject_fault(self, model_id: str) -> bool:
        """Raise the injected error, or wait out an injected timeout; True: answer with a broken body."""
        plan = self.faults.get(model_id) or self.faults.get("*")
        fault = plan.draw() if plan else None
        if plan is None or fault is None:
            return False
        if fault == "429":
            raise _Refusal(429, "Too many requests, please wait before trying again.")
        if fault == "500":
            raise _Refusal(500, "The server encountered an internal error (injected).")
        if fault == "timeout":
            await asyncio.sleep(plan.timeout_delay)
        return True

    def _guardrail(self, config: Any, streaming: bool) -> ScriptedGuardrail | None:
        if config is None:
            return None
        guardrail = self.guardrails.get(config.get("guardrailIdentifier", ""))
        if guardrail is None or config.get("guardrailVersion") != guardrail.version:
            raise _invalid("The guardrail identifier or version provided in the request does not exist.")
        mode = config.get("streamProcessingMode")
        if streaming and mode not in (None, "sync", "async"):
            raise _invalid(f"streamProcessingMode must be sync or async, not {mode!r}.")
        return guardrail

    async def _answer(self, body: dict[str, Any], guardrail: ScriptedGuardrail | None) -> _Answer:
        """The script's reply, unless the guardrail blocks the input or the output, cut at ``maxTokens``."""
        chat = _as_chat(body)
        if guardrail is not None and guardrail.blocks(_user_text(body["messages"])):
            return _blocked(chat, guardrail.blocked_input_message)
        reply = self.script.reply(chat)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            raise _Refusal(reply.status, f"scripted failure (HTTP {reply.status})")
        if guardrail is not None and guardrail.blocks(reply.content or ""):
            return _blocked(chat, guardrail.blocked_output_message)
        max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
        words = (reply.content or "").split()
        if max_tokens is not None and not reply.tool_calls and len(words) > max_tokens:
            cut = " ".join(words[:max_tokens])
            return _Answer(cut, (), "max_tokens", _bedrock_usage(_usage(chat, Reply(cut, ()))))
        stop_reason = "tool_use" if reply.tool_calls else "end_turn"
        usage = _bedrock_usage(_usage(chat, reply))
        return _Answer(reply.content, reply.tool_calls, stop_reason, usage, reply.chunk_sizes)

    async def _frames(
        self,
        call: BedrockCall,
        events: list[tuple[str, dict[str, Any]]],
        interruption: StreamInterruption | None,
        broken: bool,
    ) -> AsyncIterator[bytes]:
        """The stream's frames, ``pace`` apart; a client hanging up early lands the call in ``abandoned``
        (unless the server was reset since the call arrived)."""
        finished = False
        try:
            for sent, (event_type, body) in enumerate(events):
                if interruption is not None and sent == interruption.after:
                    if interruption.exception is not None:
                        yield encode_exception(interruption.exception, interruption.message)
                    break
                frame = encode_event(event_type, body)
                if (
                    broken and sent == 1
                ):  # a frame whose checksum is wrong: the client's parser must refuse it
                    frame = frame[:-4] + bytes(4)
                yield frame
                if self.pace:
                    await asyncio.sleep(self.pace)
            finished = True
        finally:
            # a stream from before the last reset() may notice its hang-up late: it is not this test's call
            if not finished and any(recorded is call for recorded in self.calls):
                self.abandoned.append(call)


def _check_conversation(body: dict[str, Any], max_tokens_limit: int) -> None:
    """Raise the ValidationException Bedrock answers a malformed conversation with."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or messages[0].get("role") != "user":
        raise _invalid(
            "A conversation must start with a user message. Try again with a conversation that starts "
            "with a user message."
        )
    tools = (body.get("toolConfig") or {}).get("tools")
    previous_uses: list[str] = []
    for position, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant") or (position and role == messages[position - 1].get("role")):
            raise _invalid(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        if not isinstance(content, list) or not content:
            raise _invalid(
                f"The content field in the Message object at messages.{position} is empty. Add a "
                "ContentBlock object to the content field and try again."
            )
        for index, block in enumerate(content):
            if "text" in block and not str(block["text"]).strip():
                raise _invalid(
                    f"The text field in the ContentBlock object at messages.{position}.content.{index} is "
                    "blank. Add text to the text field, and try again."
                )
        uses = [block["toolUse"] for block in content if "toolUse" in block]
        results = [block["toolResult"]["toolUseId"] for block in content if "toolResult" in block]
        if (uses or results) and not tools:
            raise _invalid(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks."
            )
        if role == "user":
            _check_results(position, results, previous_uses)
        previous_uses = [use.get("toolUseId") for use in uses]
    max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    if max_tokens is not None and not 1 <= max_tokens <= max_tokens_limit:
        raise _invalid(
            f"The maximum tokens you requested ({max_tokens}) is outside the model's range of 1 to "
            f"{max_tokens_limit}. Try again with a maximum tokens value in that range."
        )


def _check_results(position: int, results: Sequence[str], uses: Sequence[str]) -> None:
    """A user turn after tool uses answers each of them, once, and nothing else."""
    if len(results) > len(uses):
        raise _invalid(
            f"The number of toolResult blocks at messages.{position}.content exceeds the number of toolUse "
            "blocks of previous turn."
        )
    missing = [use for use in uses if use not in results]
    if missing:
        raise _invalid(
            f"Expected toolResult blocks at messages.{position}.content for the following Ids: "
            + ", ".join(missing)
        )


def _check_titan(model_id: str, body: dict[str, Any]) -> tuple[str, int]:
    """The input text and dimensions of a Titan Text Embeddings v2 request, or its ValidationException."""
    if "titan-embed-text-v2" not in model_id:
        raise _invalid(f"This local Bedrock serves InvokeModel for {TITAN_EMBED_V2} only, not {model_id}.")
    extra = sorted(set(body) - _TITAN_KEYS)
    if extra:
        raise _invalid(
            f"Malformed input request: extraneous key [{extra[0]}] is not permitted, please reformat your "
            "input and try again."
        )
    text, dimensions = body.get("inputText"), body.get("dimensions", 1024)
    if not isinstance(text, str) or not text:
        raise _invalid(
            "Malformed input request: #/inputText: expected minLength: 1, please reformat your input."
        )
    if dimensions not in TITAN_DIMENSIONS:
        raise _invalid(f"Malformed input request: #/dimensions: {dimensions} is not a valid enum value")
    return text, dimensions


def _as_chat(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation as the script reads it: OpenAI-style messages, one per content block."""
    chat: list[dict[str, Any]] = [
        {"role": "system", "content": block.get("text", "")} for block in body.get("system") or ()
    ]
    for message in body["messages"]:
        for block in message["content"]:
            if "text" in block:
                chat.append({"role": message["role"], "content": block["text"]})
            elif "toolResult" in block:
                result = block["toolResult"]
                chat.append(
                    {"role": "tool", "tool_call_id": result["toolUseId"], "content": _result_text(result)}
                )
            elif "toolUse" in block:
                use = block["toolUse"]
                call = {
                    "id": use["toolUseId"],
                    "function": {"name": use["name"], "arguments": json.dumps(use["input"])},
                }
                chat.append({"role": "assistant", "content": None, "tool_calls": [call]})
    return chat


def _result_text(result: dict[str, Any]) -> str:
    return "".join(
        part["text"] if "text" in part else json.dumps(part.get("json")) for part in result.get("content", [])
    )


def _user_text(messages: Sequence[dict[str, Any]]) -> str:
    """What an input guardrail screens: the text of the user's turns (tool results included)."""
    return "\n".join(
        block["text"] if "text" in block else _result_text(block["toolResult"])
        for message in messages
        if message["role"] == "user"
        for block in message["content"]
        if "text" in block or "toolResult" in block
    )


def _blocked(chat: list[dict[str, Any]], message: str) -> _Answer:
    return _Answer(message, (), "guardrail_intervened", _bedrock_usage(_usage(chat, Reply(message, ()))))


def _bedrock_usage(usage: dict[str, int]) -> dict[str, int]:
    return {
        "inputTokens": usage["prompt_tokens"],
        "outputTokens": usage["completion_tokens"],
        "totalTokens": usage["total_tokens"],
    }


def _tool_input(arguments: Any) -> Any:
    """A scripted call's arguments as the JSON document Bedrock sends (raw text that is not JSON as is)."""
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _converse_output(answer: _Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = [] if answer.text is None else [{"text": answer.text}]
    content.extend(
        {"toolUse": {"toolUseId": call_id, "name": name, "input": _tool_input(arguments)}}
        for call_id, name, arguments in answer.tool_calls
    )
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": answer.stop_reason,
        "usage": answer.usage,
        "metrics": {"latencyMs": 1},
    }


def _stream_events(answer: _Answer) -> list[tuple[str, dict[str, Any]]]:
    """The ConverseStream events of ``answer``: text deltas, then each tool use (its input in two pieces)."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    index = 0
    if answer.text:
        events.extend(
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            for piece in _pieces(answer.text, answer.chunk_sizes)
        )
        events.append(("contentBlockStop", {"contentBlockIndex": 0}))
        index = 1
    for offset, (call_id, name, arguments) in enumerate(answer.tool_calls):
        block = index + offset
        start = {"toolUse": {"toolUseId": call_id, "name": name}}
        events.append(("contentBlockStart", {"contentBlockIndex": block, "start": start}))
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        half = len(text) // 2
        events.extend(
            ("contentBlockDelta", {"contentBlockIndex": block, "delta": {"toolUse": {"input": part}}})
            for part in (text[:half], text[half:])
            if part
        )
        events.append(("contentBlockStop", {"contentBlockIndex": block}))
    events.append(("messageStop", {"stopReason": answer.stop_reason}))
    events.append(("metadata", {"usage": answer.usage, "metrics": {"latencyMs": 1}}))
    return events
