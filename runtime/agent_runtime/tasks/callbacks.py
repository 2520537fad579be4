"""Task callbacks: POST the finished task to the URL its creator gave, with retries; best effort.

The URL was checked against ``http_allowed_hosts`` when the task was submitted and is checked again
before every attempt (the allow-list may have changed since), with ``http_get``'s rules: exact host
match, https only, loopback only with ``http_allow_loopback``. Redirects are not followed. The outcome is
returned for the worker to record on the task; a callback that never arrives fails nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from agent_runtime.errors import ToolError
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
            response = await http.post(
                checked_url(url, settings),
                json=dict(payload),
                timeout=settings.callback_timeout_seconds,
                follow_redirects=False,
            )
        except ToolError as error:
            return _outcome("failed", attempts, f"refused: {error.message}")
        except httpx.HTTPError as error:
            detail = f"request failed: {type(error).__name__}"
            continue
        detail = f"HTTP {response.status_code}"
        if response.is_success:
            return _outcome("delivered", attempts, detail)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            break
    return _outcome("failed", attempts, detail)


def _outcome(status: str, attempts: int, detail: str) -> dict[str, Any]:
    return {"status": status, "attempts": attempts, "detail": detail, "at": time.time()}
