"""Request dependencies: the opened services and the authenticated caller."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from agent_runtime.caller import Caller
from agent_runtime.errors import UnprocessableRequest
from agent_runtime.runner import RunOptions
from agent_runtime.services import Lifecycle, Services

# auto_error=False: missing credentials are reported by the authenticator, in the API's error format.
_bearer = HTTPBearer(auto_error=False, description="An API key or a JWT, per AGENTSTAGE_AUTH_MODE.")
_api_key = APIKeyHeader(name="api-key", auto_error=False, description="An API key (Azure OpenAI style).")


async def services(request: Request) -> Services:
    lifecycle: Lifecycle = request.app.state.lifecycle
    return await lifecycle.get()


async def caller(
    runtime: Annotated[Services, Depends(services)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Caller:
    return await runtime.auth.authenticate(bearer=bearer.credentials if bearer else None, api_key=api_key)


async def authenticate(request: Request, runtime: Services) -> Caller:
    """:func:`caller` outside FastAPI's dependency solving (the hot routes), with the same extractors."""
    bearer, api_key = await _bearer(request), await _api_key(request)
    return await runtime.auth.authenticate(bearer=bearer.credentials if bearer else None, api_key=api_key)


_IDEMPOTENCY_KEY = "[!-~]{1,128}"
"""1-128 printable ASCII characters, no spaces: the key is stored and compared, and scopes the dedupe of
side-effecting tool calls."""
_IDEMPOTENCY_KEY_MATCH = re.compile(_IDEMPOTENCY_KEY).fullmatch

IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "A retry with the same key is not done twice: a task is submitted once, a "
            "side-effecting tool call runs once.",
            "schema": {"type": "string", "pattern": f"^{_IDEMPOTENCY_KEY}$"},
        }
    ]
}
"""The ``Idempotency-Key`` header in the OpenAPI operation of a route that reads it (its ``openapi_extra``):
read through :func:`idempotency_key`, not as a FastAPI parameter, as the hot routes call the endpoints."""


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, refused (422 naming it) unless 1-128 printable ASCII characters."""
    key = request.headers.get("idempotency-key")
    if key is not None and not _IDEMPOTENCY_KEY_MATCH(key):
        raise UnprocessableRequest(
            "Idempotency-Key must be 1-128 printable ASCII characters without spaces", field="Idempotency-Key"
        )
    return key


def run_options(
    request: Request, caller: Caller, *, conversation_id: str | None = None, task_class: str | None = None
) -> RunOptions:
    """What the run takes from the HTTP request: trace context (``traceparent``) and ``Idempotency-Key``
    (checked by :func:`idempotency_key`: invoke and chat refuse a malformed one as the task route does)."""
    return RunOptions(
        caller=caller,
        conversation_id=conversation_id,
        trace_headers=request.headers,
        task_class=task_class,
        request_key=idempotency_key(request),
    )


ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Caller, Depends(caller)]
