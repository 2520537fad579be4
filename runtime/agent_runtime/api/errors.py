"""Every error the API returns is JSON ``{"error": {"code", "message", "field"?}}`` with the right status.

Caller mistakes get their 4xx; only true bugs reach the catch-all, which answers a JSON 500 without a
traceback (the traceback goes to the log, never to the caller).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agent_runtime.errors import AgentRuntimeError

log = logging.getLogger("agentstage.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return _json_error(status, error)


def _json_error(status: int, error: dict[str, Any], retry_after: float | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


def runtime_error_response(error: AgentRuntimeError, method: str, path: str) -> JSONResponse:
    """The answer to a runtime error of ``method path``: its status and code; server-side ones are logged."""
    if error.status >= 500:
        log.warning("%s %s failed: %s: %s", method, path, error.code, error.message)
    return _json_error(error.status, error.to_dict(), error.retry_after)


def bug_response(error: BaseException, method: str, path: str) -> JSONResponse:
    """The answer to a bug in ``method path``: a JSON 500 for the caller, the traceback for the log."""
    log.error("unhandled error in %s %s", method, path, exc_info=error)
    return error_response(500, "internal_error", "internal error; the operators have the details in the log")


async def _runtime_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AgentRuntimeError)
    return runtime_error_response(error, request.method, request.url.path)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return error_response(400, "invalid_request", "the body is not valid JSON")
    field = ".".join(location) or None
    message = first.get("msg", "invalid request")
    return error_response(422, "invalid_request", f"{field}: {message}" if field else message, field)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return error_response(
        error.status_code, _HTTP_CODES.get(error.status_code, "http_error"), str(error.detail)
    )


async def _bug(request: Request, error: Exception) -> JSONResponse:
    return bug_response(error, request.method, request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AgentRuntimeError, _runtime_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _bug)
