"""Request dependencies: the opened services and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from agent_runtime.caller import Caller
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


def run_options(
    request: Request, caller: Caller, *, conversation_id: str | None = None, task_class: str | None = None
) -> RunOptions:
    """What the run takes from the HTTP request: trace context (``traceparent``) and ``Idempotency-Key``."""
    return RunOptions(
        caller=caller,
        conversation_id=conversation_id,
        trace_headers=request.headers,
        task_class=task_class,
        request_key=request.headers.get("idempotency-key"),
    )


ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Caller, Depends(caller)]
