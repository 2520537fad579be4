"""``http_get``: fetch a URL, but only from hosts the operator listed.

The host must match an entry of ``http_allowed_hosts`` exactly (no suffix or wildcard matching), the
scheme must be https, and loopback addresses are refused unless ``http_allow_loopback`` is set (tests,
dev). Redirects are not followed: the model gets the ``Location`` and must ask again, so every hop passes
the same check. Bodies are cut at ``http_max_bytes``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent_runtime.errors import ToolDenied, ToolError
from agent_runtime.tools.base import ToolContext

if TYPE_CHECKING:
    import httpx

    from agent_runtime.settings import Settings


class HttpGetArgs(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="Absolute https URL on an allowed host.")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(raw: str, settings: Settings) -> httpx.URL:
    """The URL, if policy allows fetching it; else :class:`ToolDenied` saying why.

    httpx loads here, not with the module: ``agentstage plan`` reads the built-in tools to check the names a
    stack file gives, and need not load an HTTP client to do so (the runtime has it loaded already)."""
    import httpx

    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as error:
        raise ToolError(f"invalid URL: {error}") from error
    host = url.host.lower()
    allowed = {entry.lower() for entry in settings.http_allowed_hosts}
    if host not in allowed:
        raise ToolDenied(f"host '{host}' is not in the allow-list")
    if is_loopback(host):
        if not settings.http_allow_loopback:
            raise ToolDenied("loopback hosts are not allowed")
        if url.scheme not in ("http", "https"):
            raise ToolDenied("only http(s) URLs are allowed")
    elif url.scheme != "https":
        raise ToolDenied("only https URLs are allowed")
    return url


async def http_get(args: HttpGetArgs, ctx: ToolContext) -> dict[str, Any]:
    """Fetch a URL on an allowed host with GET; returns status, content type and (truncated) text."""
    import httpx

    settings = ctx.settings
    url = checked_url(args.url, settings)
    body = bytearray()
    try:
        async with ctx.http.stream(
            "GET", url, timeout=settings.http_timeout_seconds, follow_redirects=False
        ) as response:
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > settings.http_max_bytes:
                    break
    except httpx.HTTPError as error:
        raise ToolError(f"request failed: {type(error).__name__}") from error
    result: dict[str, Any] = {
        "status": response.status_code,
        "content_type": response.headers.get("content-type", ""),
        "body": bytes(body[: settings.http_max_bytes]).decode(response.encoding or "utf-8", errors="replace"),
        "truncated": len(body) > settings.http_max_bytes,
    }
    if response.is_redirect:
        result["location"] = response.headers.get("location", "")
    return result
