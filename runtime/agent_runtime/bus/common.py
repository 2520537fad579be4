"""Pieces every adapter shares: the JSON body encoding and the long-poll loop of queues that have none."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

FIRST_POLL_SECONDS = 0.01
MAX_POLL_SECONDS = 0.25


def new_message_id() -> str:
    return uuid.uuid4().hex


def encode_json(value: Mapping[str, Any], what: str = "message body") -> str:
    """``value`` as compact JSON; a body that is not JSON is the sender's bug, so it raises ValueError."""
    try:
        return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the {what} must be a JSON object: {exc}") from exc


def decode_object(data: str | bytes) -> dict[str, Any]:
    """The JSON object in ``data``; ValueError says why there is none (text another client sent)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if isinstance(value, dict):
        return value
    raise ValueError(f"a JSON {type(value).__name__}, not an object")


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as a plain dict of strings: every transport carries strings only, so refuse anything else."""
    bad = [name for name, value in headers.items() if not isinstance(name, str) or not isinstance(value, str)]
    if bad:
        raise ValueError(f"message headers must be strings; not: {', '.join(map(str, bad))}")
    return dict(headers)


async def long_poll(
    attempt: Callable[[], Awaitable[list[T]]],
    wait_seconds: float,
    *,
    max_pause: float = MAX_POLL_SECONDS,
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> list[T]:
    """Call ``attempt`` until it finds something or ``wait_seconds`` have passed; [] then.

    For queues without server-side long polling (SQLite, Storage Queues). The pause between attempts
    starts short, so a message sent just after an empty attempt is picked up within milliseconds, and
    doubles up to ``max_pause``, so an idle receiver costs a few queries a second. ``pause`` lets an
    adapter wake up early (SQLite wakes receivers of its own process when it sends).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(wait_seconds, 0.0)
    delay = FIRST_POLL_SECONDS
    while True:
        found = await attempt()
        remaining = deadline - loop.time()
        if found or remaining <= 0:
            return found
        await pause(min(delay, remaining))
        delay = min(delay * 2, max_pause)
