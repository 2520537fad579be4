"""Every error the API returns is JSON ``{"error": {"code", "message", "field"?}}`` with the right status.

Caller mistakes get their 4xx; only true bugs reach the catch-all, which answers a JSON 500 without a
traceback (the traceback goes to the log, never to the caller).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_runtime.errors import AgentRuntimeError, InvalidRequest, UnsupportedMediaType

log = logging.getLogger("agentstage.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


class _ErrorJSON(JSONResponse):
    """An error body, which may echo what the caller sent (an agent's name, an unknown field's): a lone
    surrogate in it, which UTF-8 cannot encode, is written as its JSON escape (``\\ud800``) - still JSON, and
    the caller's own text - where :class:`JSONResponse` would raise and turn the 4xx into a 500."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return _json_error(status, error, headers=headers)


def _json_error(
    status: int,
    error: dict[str, Any],
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    sent = dict(headers or {})
    if status == 401:
        sent["WWW-Authenticate"] = "Bearer"
    if retry_after is not None:
        sent["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return _ErrorJSON({"error": error}, status_code=status, headers=sent or None)


def runtime_error_response(error: AgentRuntimeError, method: str, path: str) -> JSONResponse:
    """The answer to a runtime error of ``method path``: its status and code; server-side ones are logged."""
    if error.status >= 500:
        log.warning("%s %s failed: %s: %s", method, path, error.code, error.message)
    return _json_error(error.status, error.to_dict(), error.retry_after)


def bug_response(error: BaseException, method: str, path: str) -> JSONResponse:
    """The answer to a bug in ``method path``: a JSON 500 for the caller, the traceback for the log."""
    log.error("unhandled error in %s %s", method, path, exc_info=error)
    return error_response(500, "internal_error", "internal error; the operators have the details in the log")


class BugResponses:
    """Innermost ASGI middleware: a bug on FastAPI's path gets :func:`bug_response`, as the hot routes
    (:mod:`.hot_routes`) answer theirs.

    Starlette's outermost ``ServerErrorMiddleware`` answers an unhandled exception too, but then re-raises
    it: the server logs the traceback a second time and drops the keep-alive connection, without the
    ``Connection: close`` that would tell the client. Here the exception ends with the answer, logged once,
    and the connection stays usable. An exception after the answer began cannot be answered: it goes on to
    the server, which logs it and closes the connection, the only way to tell the client its answer is cut.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            if started:
                raise
            await bug_response(error, scope["method"], scope["path"])(scope, receive, send)


async def _runtime_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AgentRuntimeError)
    return runtime_error_response(error, request.method, request.url.path)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    if isinstance(error.body, bytes):
        # FastAPI hands the endpoint the raw bytes only when the Content-Type is not JSON (a JSON body is
        # parsed, an empty one absent): the body failed for how it was labelled, not for its fields.
        return _not_json(request.headers.get("content-type"))
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return error_response(400, "invalid_request", "the body is not valid JSON")
    field = ".".join(location) or None
    message = first.get("msg", "invalid request")
    return error_response(422, "invalid_request", f"{field}: {message}" if field else message, field)


def _not_json(content_type: str | None) -> JSONResponse:
    """A 415 naming the header to set, where validating the bytes would only say the body is no object."""
    sent = f"it was sent as {content_type}" if content_type else "it was sent without one"
    return error_response(
        UnsupportedMediaType.status,
        UnsupportedMediaType.code,
        f"the body must be JSON, sent with Content-Type: application/json; {sent}",
        "Content-Type",
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    unreadable = _unreadable_body(error)
    if unreadable is not None:
        return error_response(InvalidRequest.status, InvalidRequest.code, unreadable)
    message = str(error.detail)
    if error.status_code == 405 and error.headers and "Allow" in error.headers:
        allowed = " or ".join(sorted(error.headers["Allow"].split(", ")))
        message = f"{request.method} is not allowed on {request.url.path}: use {allowed}"
    code = _HTTP_CODES.get(error.status_code, "http_error")
    return error_response(error.status_code, code, message, headers=error.headers)


def _unreadable_body(error: HTTPException) -> str | None:
    """What is wrong with a body FastAPI could not parse, None for any other HTTP error: but for a syntax
    error (its ``json_invalid``), FastAPI answers every failure of ``json.loads`` with the same 400 "There was
    an error parsing the body", raised from the failure, which says what to fix."""
    if error.status_code != 400:
        return None
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not valid UTF-8 JSON"
    if isinstance(cause, RecursionError):
        return "the body's JSON is nested too deeply"
    if isinstance(cause, ValueError):  # json.loads' only other one: Python's limit on an integer's digits
        return f"the body's JSON holds a number of more than {sys.get_int_max_str_digits()} digits"
    return None


def install_error_handlers(app: FastAPI) -> None:
    """The handlers of the errors FastAPI's path raises on purpose; a bug's answer is :class:`BugResponses`."""
    app.add_exception_handler(AgentRuntimeError, _runtime_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
