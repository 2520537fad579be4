"""The scripted OpenAI-compatible model server: chat completions (plain and streaming, with usage),
embeddings and the model list, all deterministic, on OpenAI's paths and Azure OpenAI's deployment paths.
It answers to any model name; ``GET /v1/models`` lists the runtime's default ones (:data:`MODELS`).

Run it in-process for tests::

    from agent_runtime.testing import Rule, Script, ScriptedModelServer, ScriptedToolCall

    script = Script([Rule(pattern="weather", tool_calls=[ScriptedToolCall(name="weather",
                                                                          arguments={"city": "Oslo"})])])
    with ScriptedModelServer(script) as model:
        settings = Settings(llm_endpoint=model.base_url, ...)
        ...
        assert model.requests[0]["tools"][0]["function"]["name"] == "weather"

or standalone: ``python -m agent_runtime.testing --port 8400 [--script rules.json]``.

Token counts are words, not real tokens: stable numbers for assertions, not a tokenizer. Embeddings hash
each word and its character trigrams into a dimension (feature hashing), so texts sharing words or word
stems are similar and a text is always identical to itself; they carry no meaning beyond that.
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import itertools
import json
import math
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_runtime.knowledge.common import STOP_WORDS
from agent_runtime.testing.faults import Fault, Faults
from agent_runtime.testing.script import Reply, Script
from agent_runtime.testing.serve import ServerThread

DEFAULT_DIMENSIONS = 384
MODELS = ("gpt-4o-mini", "text-embedding-3-small")
"""What ``GET /v1/models`` lists: the runtime's default chat and embedding models (any name is answered)."""
_WORD = re.compile(r"\w+")


def create_model_app(
    script: Script,
    requests: list[dict[str, Any]] | None = None,
    faults: dict[str, Faults] | None = None,
    headers: list[dict[str, str]] | None = None,
) -> Starlette:
    """The server as an ASGI app; every chat request body is appended to ``requests`` and its headers to
    ``headers`` when given (nothing is kept otherwise: a long-running server would grow without end);
    ``faults`` maps a model (or ``"*"``) to the faults injected into its calls."""
    injected = faults if faults is not None else {}

    def model_of(body: dict[str, Any], request: Request) -> str:
        return str(body.get("model", request.path_params.get("deployment", "scripted")))

    def fault_of(body: dict[str, Any], request: Request) -> tuple[Fault, Faults] | None:
        model = model_of(body, request)
        plan = injected.get(model) or injected.get("*")
        fault = plan.draw() if plan else None
        return (fault, plan) if fault is not None and plan is not None else None

    async def chat(request: Request) -> Response:
        body = await request.json()
        if requests is not None:
            requests.append(body)
        if headers is not None:
            headers.append(dict(request.headers))
        if faulty := fault_of(body, request):
            return await _faulty(*faulty)
        model = model_of(body, request)
        messages = body.get("messages") or []
        reply = script.reply(messages)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            error = {
                "message": f"scripted failure (HTTP {reply.status})",
                "type": "server_error",
                "code": None,
            }
            return JSONResponse({"error": error}, status_code=reply.status)
        usage = _usage(messages, reply)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _chunks(model, reply, usage, include_usage), media_type="text/event-stream"
            )
        return JSONResponse(_completion(model, reply, usage))

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        if faulty := fault_of(body, request):
            return await _faulty(*faulty)
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            return JSONResponse({"error": {"message": "input must be a string or a list of strings"}}, 400)
        dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": index, "embedding": _encode(embed(text, dimensions), as_base64)}
            for index, text in enumerate(texts)
        ]
        tokens = sum(_words(text) for text in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "scripted"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [_model(name) for name in MODELS]})

    async def model(request: Request) -> Response:
        return JSONResponse(_model(request.path_params["model"]))

    # Azure OpenAI's deployment-scoped paths too, so the Azure client can be tested against the same script.
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model:path}", model, methods=["GET"]),
            Route("/openai/deployments/{deployment}/chat/completions", chat, methods=["POST"]),
            Route("/openai/deployments/{deployment}/embeddings", embeddings, methods=["POST"]),
        ]
    )


def _model(name: str) -> dict[str, Any]:
    """A model object as OpenAI's ``GET /v1/models`` lists it."""
    return {"id": name, "object": "model", "created": 0, "owned_by": "agentstage-scripted"}


async def _faulty(fault: Fault, plan: Faults) -> Response:
    if fault == "429":
        error = {"message": "rate limited (injected)", "type": "rate_limit_exceeded", "code": "429"}
        return JSONResponse({"error": error}, 429, headers={"Retry-After": f"{plan.retry_after:g}"})
    if fault == "500":
        return JSONResponse({"error": {"message": "injected failure", "type": "server_error"}}, 500)
    if fault == "timeout":
        await asyncio.sleep(plan.timeout_delay)
    return Response('{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess', media_type="application/json")


class ScriptedModelServer(ServerThread):
    """The model server on a free loopback port, in a thread; ``base_url`` is what ``llm_endpoint`` takes.

    ``faults`` (model or ``"*"`` -> :class:`Faults`) may be changed while it runs; ``requests`` and
    ``headers`` record each chat request's body and headers (trace context propagation) unless ``record``
    is off, as for a server that runs for hours (``agentstage dev``).
    """

    def __init__(
        self, script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0, record: bool = True
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.faults: dict[str, Faults] = {}
        app = create_model_app(
            script or Script(),
            self.requests if record else None,
            self.faults,
            self.headers if record else None,
        )
        super().__init__(app, host=host, port=port)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def embed(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector: each content word and each of its character trigrams hashed to a
    dimension and a sign (subword feature hashing), so "invoice" and "invoices" are close while sharing no
    whole word; function words count only when the text has nothing else."""
    vector = [0.0] * dimensions
    words = _WORD.findall(text.lower())
    for word in [word for word in words if word not in STOP_WORDS] or words or [text]:
        _add_feature(vector, word, 1.0)
        padded = f"<{word}>"
        for start in range(len(padded) - 2):
            _add_feature(vector, padded[start : start + 3], TRIGRAM_WEIGHT)
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # features cancelled out: fall back to one hashed dimension of the whole text
        digest = hashlib.sha256(text.encode()).digest()
        vector[int.from_bytes(digest[:4], "little") % dimensions] = 1.0
        return vector
    return [x / norm for x in vector]


TRIGRAM_WEIGHT = 0.35
"""How much a shared trigram counts against a shared word: enough for inflections to meet, not to drown
whole-word matches."""


def _add_feature(vector: list[float], feature: str, weight: float) -> None:
    digest = hashlib.sha256(feature.encode()).digest()
    vector[int.from_bytes(digest[:4], "little") % len(vector)] += weight if digest[4] & 1 else -weight


def _encode(vector: list[float], as_base64: bool) -> list[float] | str:
    """Floats, or base64 of little-endian float32 as the ``openai`` SDK asks for by default."""
    return base64.b64encode(array.array("f", vector).tobytes()).decode() if as_base64 else vector


def _words(text: str) -> int:
    return len(text.split())


def _usage(messages: Sequence[dict[str, Any]], reply: Reply) -> dict[str, int]:
    prompt = sum(_words(json.dumps(message.get("content") or "")) + 1 for message in messages)
    completion = _words(reply.content or "") + sum(5 for _ in reply.tool_calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for call_id, name, args in reply.tool_calls
    ]


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _pieces(content: str, sizes: Sequence[int]) -> list[str]:
    """``content`` one word (with its trailing space) per piece, or in pieces of ``sizes`` characters."""
    if not sizes:
        return re.findall(r"\S+\s*|\s+", content)
    pieces: list[str] = []
    position, cycled = 0, itertools.cycle(sizes)
    while position < len(content):
        size = next(cycled)
        pieces.append(content[position : position + size])
        position += size
    return pieces


def _completion(model: str, reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply)
    return {
        "id": f"chatcmpl-scripted-{len(reply.content or '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
        "usage": usage,
    }


async def _chunks(model: str, reply: Reply, usage: dict[str, int], include_usage: bool) -> AsyncIterator[str]:
    base = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply.content or "", reply.chunk_sizes):
        yield chunk({"content": piece})
    for index, call in enumerate(_tool_calls(reply)):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": arguments[:half]},
        }
        yield chunk({"tool_calls": [head]})
        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
    yield chunk({}, _finish_reason(reply))
    if include_usage:
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"
