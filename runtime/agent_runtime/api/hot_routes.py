"""The two routes every model call takes, dispatched without FastAPI's per-request machinery.

``POST /v1/chat/completions`` and ``POST /v1/agents/{agent}/invoke`` carry the runtime's traffic. Through
FastAPI each paid for dependency solving, a second validation of the model the endpoint had just built,
``jsonable_encoder`` and the exception middlewares - a fifth of a worker's CPU at 600 requests/s. This
middleware serves them in front of the router with the *same endpoint functions* (:mod:`.chat`,
:mod:`.agents`), the same authentication (FastAPI's own bearer and ``api-key`` extractors) and the same error
answers (:mod:`.errors`): the body is validated once, in pydantic's core, straight from its bytes, and the
endpoint's response model is serialised once, the same way.

Only the well-formed case is served here. A body that is not JSON, not of a JSON content type, empty, or
that fails validation is handed to FastAPI unchanged (replayed), so every refusal is FastAPI's own, worded and
ordered as before; the routes stay registered with FastAPI, which is also what the OpenAPI document
describes. The body limit (:class:`~agent_runtime.api.limits.BodyLimit`) sits outside this middleware.

A served request answers first (:mod:`agent_runtime.answer_first`): its budget settlements are written once
its answer is sent, and the request ends when they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_runtime.answer_first import answering_first
from agent_runtime.api import agents, chat
from agent_runtime.api.deps import authenticate
from agent_runtime.api.errors import bug_response, runtime_error_response
from agent_runtime.api.schemas import ChatCompletionRequest, InvokeRequest
from agent_runtime.errors import AgentRuntimeError
from agent_runtime.services import Lifecycle

CHAT_PATH = "/v1/chat/completions"
INVOKE_PREFIX, INVOKE_SUFFIX = "/v1/agents/", "/invoke"


@dataclass(frozen=True)
class _Route:
    body: type[BaseModel]
    call: Callable[..., Awaitable[Any]]
    """The FastAPI endpoint: called with ``body``, ``request``, ``runtime``, ``caller`` and path params."""


_CHAT = _Route(ChatCompletionRequest, chat.chat_completions)
_INVOKE = _Route(InvokeRequest, agents.invoke)


class HotRoutes:
    """ASGI middleware serving the hot routes' well-formed requests; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self._lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        route, params = _match(_route_path(scope))
        if route is None or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client left (or the body limit refused it and answered already)
            return
        try:
            parsed = route.body.model_validate_json(body) if body else None
        except ValidationError:
            parsed = None
        if parsed is None:  # FastAPI words and orders every refusal, as for any other route
            await self.app(scope, _replayed(body, receive), send)
            return
        async with answering_first():  # budget settlements are written once the answer is sent
            response = await self._answer(route, parsed, params, scope, receive)
            await response(scope, receive, send)

    async def _answer(
        self, route: _Route, body: BaseModel, params: dict[str, str], scope: Scope, receive: Receive
    ) -> Response:
        request = Request(scope, receive)
        try:
            runtime = await self._lifecycle.get()
            caller = await authenticate(request, runtime)
            result = await route.call(body=body, request=request, runtime=runtime, caller=caller, **params)
            if isinstance(result, Response):  # a stream
                return result
            content = result.__pydantic_serializer__.to_json(result)
        except AgentRuntimeError as error:
            return runtime_error_response(error, scope["method"], scope["path"])
        except Exception as error:  # noqa: BLE001 - a bug: a JSON 500, the traceback to the log
            return bug_response(error, scope["method"], scope["path"])
        return Response(content, headers={"content-type": "application/json"})


def _match(path: str) -> tuple[_Route | None, dict[str, str]]:
    if path == CHAT_PATH:
        return _CHAT, {}
    if path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX):
        agent = path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)]
        if agent and "/" not in agent:  # what FastAPI's ``{agent}`` path parameter matches
            return _INVOKE, {"agent": agent}
    return None, {}


def _route_path(scope: Scope) -> str:
    """The path below the app's ``root_path``, as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


_WHITESPACE = bytes(byte for byte in range(256) if chr(byte).isspace())
"""What ``str.strip`` removes from a header value (decoded as Latin-1), where ``bytes.strip`` removes less."""


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI would parse the body as JSON (``application/json`` or ``application/*+json``).

    Exactly as FastAPI decides it, so that a body one serves the other never refuses: it reads the header
    (decoded as Latin-1) with ``email.message``, which strips it as ``str.strip`` does and takes a type of
    more than one ``/`` for ``text/plain``.
    """
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip(_WHITESPACE).lower()
            return media == b"application/json" or (
                media.startswith(b"application/") and media.endswith(b"+json") and media.count(b"/") == 1
            )
    return False


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replayed(body: bytes, receive: Receive) -> Receive:
    """``receive`` as if the body had not been read yet."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
