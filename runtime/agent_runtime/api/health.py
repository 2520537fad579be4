"""Liveness and readiness probes; no authentication, no request body, nothing secret in the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agent_runtime.api.deps import ServicesDep
from agent_runtime.api.schemas import Health, Readiness
from agent_runtime.memory.base import Owner
from agent_runtime.services import Services

router = APIRouter(tags=["health"])

PROBE_TIMEOUT_SECONDS = 2.0
PROBE_ID = "agentstage-readyz"
PROBE_OWNER = Owner(tenant="agentstage", caller="readyz")
"""Reads a conversation nobody writes: the probe touches the store, never a caller's data."""


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (it does not touch any dependency)."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(runtime: ServicesDep) -> Readiness | JSONResponse:
    """The state and vector stores answer; 503 otherwise, so load balancers route around this instance."""
    checks = dict(
        zip(
            ("conversations", "vectors"),
            await asyncio.gather(_probe(_conversations(runtime)), _probe(_vectors(runtime))),
            strict=True,
        )
    )
    if all(result == "ok" for result in checks.values()):
        return Readiness(status="ready", checks=checks)
    return JSONResponse(Readiness(status="unavailable", checks=checks).model_dump(), status_code=503)


async def _conversations(runtime: Services) -> None:
    await runtime.conversations.history(PROBE_OWNER, PROBE_ID, limit=1)


async def _vectors(runtime: Services) -> None:
    unit = [1.0] + [0.0] * (runtime.settings.embedding_dimensions - 1)
    await runtime.vectors.query(PROBE_ID, unit, top_k=1)


async def _probe(check: Awaitable[None]) -> str:
    """'ok', or the kind of failure (never its message, which may carry a connection string)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await check
    except Exception as error:  # noqa: BLE001 - whatever the failure, the instance is not ready
        return f"error: {type(error).__name__}"
    return "ok"
