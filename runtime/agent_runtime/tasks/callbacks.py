"""Task callbacks: POST the finished task to the URL its creator gave, with retries; best effort.

The URL was checked against ``http_allowed_hosts`` when the task was submitted and is checked again
before every attempt (the allow-list may have changed since), with ``http_get``'s rules: exact host
match, https only, only public addresses (loopback with ``http_allow_loopback``), checked on the address
connected to. Redirects are not followed. Each attempt is
bounded as a whole by ``callback_timeout_seconds`` (a receiver that drips its answer cannot hold a worker),
and only the status is read, never the body. The outcome is returned for the worker to record on the task;
a callback that never arrives fails nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from agent_runtime.errors import ToolError
from agent_runtime.outbound import pinned_stream
from agent_runtime.settings import Settings
from agent_runtime.tools.builtins.http_get import checked_url


async def deliver(
    http: httpx.AsyncClient, url: str, payload: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    """POST ``payload`` to ``url`` until a 2xx, a 4xx other than 408/429 (the receiver refuses it; a retry
    would not help) or ``callback_max_retries`` retries; ``{"status", "attempts", "detail", "at"}``."""
    detail = ""
    attempts = 0
    for attempt in range(settings.callback_max_retries + 1):
        if attempt:
            await asyncio.sleep(
                min(settings.retry_base_seconds * 2 ** (attempt - 1), settings.retry_max_seconds)
            )
        attempts += 1
        try:
            status = await _post(http, checked_url(url, settings), payload, settings)
        except ToolError as error:
            return _outcome("failed", attempts, f"refused: {error.message}")
        except TimeoutError:
            detail = f"no answer within {settings.callback_timeout_seconds}s"
            continue
        except httpx.HTTPError as error:
            detail = f"request failed: {type(error).__name__}"
            continue
        detail = f"HTTP {status}"
        if 200 <= status < 300:
            return _outcome("delivered", attempts, detail)
        if 400 <= status < 500 and status not in (408, 429):
            break
    return _outcome("failed", attempts, detail)


def delivery_seconds(settings: Settings) -> float:
    """The longest :func:`deliver` can take: every attempt's timeout and the pauses between them."""
    pauses = sum(
        min(settings.retry_base_seconds * 2 ** (attempt - 1), settings.retry_max_seconds)
        for attempt in range(1, settings.callback_max_retries + 1)
    )
    return (settings.callback_max_retries + 1) * settings.callback_timeout_seconds + pauses


async def _post(
    http: httpx.AsyncClient, url: httpx.URL, payload: Mapping[str, Any], settings: Settings
) -> int:
    """The status of one POST, within ``callback_timeout_seconds`` in all (httpx's timeouts bound each read,
    not the whole exchange), sent to the address the host resolved to once it was found public (as
    ``http_get`` fetches: a name resolving to the metadata service or a private address is refused); the
    body is left unread, whatever its size (leaving the stream closes the connection)."""
    timeout = settings.callback_timeout_seconds
    async with asyncio.timeout(timeout):
        async with pinned_stream(
            http, "POST", url, settings, json=dict(payload), timeout=timeout
        ) as response:
            return response.status_code


def _outcome(status: str, attempts: int, detail: str) -> dict[str, Any]:
    return {"status": status, "attempts": attempts, "detail": detail, "at": time.time()}
