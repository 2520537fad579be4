"""``http_get``: fetch a URL, but only from hosts the operator listed.

The host must match an entry of ``http_allowed_hosts`` exactly (no suffix or wildcard matching; case and a
trailing dot do not count, IP addresses compare in canonical form). An entry ``host`` allows the scheme's
default port only; ``host:8443`` (``[v6]:8443``) allows that port. The scheme must be https. Loopback is
refused unless ``http_allow_loopback`` is set (tests, dev): then loopback hosts may also use http and any
port. Numeric hosts must be written canonically (``127.1``, ``2130706433``, ``0x7f.0.0.1`` are refused,
not guessed at). Every address the host resolves to must be public (:mod:`agent_runtime.outbound`), and
the request goes to the address checked. Redirects are not followed: the model gets the ``Location`` and
must ask again, so every hop passes the same check. Bodies are cut at ``http_max_bytes``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent_runtime.errors import ToolDenied, ToolError
from agent_runtime.outbound import address_kind, parse_ip, pinned_stream, port_of, refusal
from agent_runtime.tools.base import ToolContext

if TYPE_CHECKING:
    import httpx

    from agent_runtime.settings import Settings

# A host whose last label is a number is an IPv4 address to URL parsers and resolvers, in whatever of the
# legacy forms (decimal 2130706433, hex 0x7f, octal 0177, short 127.1) they accept.
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")


class HttpGetArgs(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="Absolute https URL on an allowed host.")


def _canonical_host(host: str) -> str:
    """``host`` as the allow-list compares it; :class:`ToolDenied` for a non-canonical numeric form."""
    host = host.lower().removesuffix(".")
    if address := parse_ip(host):
        return str(address)
    if _NUMERIC_LABEL.fullmatch(host.rpartition(".")[2]):
        raise ToolDenied(f"host '{host}' is not a canonical IP address: write IPv4 as a.b.c.d in decimal")
    return host


def _allowed(entry: str) -> tuple[str, int] | None:
    """An ``http_allowed_hosts`` entry as (canonical host, port); ``None`` for an entry that names no
    usable host and port, which allows nothing. Without a port an entry allows 443: only loopback may use
    http, and loopback may use any port."""
    import httpx

    # A bare IPv6 address has colons that are not a port.
    if address := parse_ip(entry):
        return str(address), 443
    try:
        parsed = httpx.URL(f"//{entry}")
        return _canonical_host(parsed.host), 443 if parsed.port is None else parsed.port
    except (httpx.InvalidURL, ToolDenied):
        return None


def is_loopback(host: str) -> bool:
    """Whether the canonical ``host`` names loopback: a ``localhost`` name (RFC 6761) or a loopback address
    in any of its forms."""
    if address := parse_ip(host):
        return address_kind(address) == "loopback"
    return host == "localhost" or host.endswith(".localhost")


def checked_url(raw: str, settings: Settings) -> httpx.URL:
    """The URL, with its host in canonical form, if policy allows fetching it; else :class:`ToolDenied`
    saying why. The addresses a host name resolves to are checked when connecting
    (:func:`agent_runtime.outbound.pinned_stream`).

    httpx loads here, not with the module: ``agentstage plan`` reads the built-in tools to check the names a
    stack file gives, and need not load an HTTP client to do so (the runtime has it loaded already)."""
    import httpx

    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as error:
        raise ToolError(f"invalid URL: {error}") from error
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ToolError(f"invalid URL: port {url.port} is not in 1-65535")
    host = _canonical_host(url.host)
    allowed = {entry for entry in map(_allowed, settings.http_allowed_hosts) if entry}
    if host not in {allowed_host for allowed_host, _ in allowed}:
        raise ToolDenied(f"host '{host}' is not in the allow-list")
    address = parse_ip(host)
    if address and (reason := refusal(address, settings.http_allow_loopback)):
        raise ToolDenied(f"host '{host}' refused: {reason}")
    if is_loopback(host):
        if not settings.http_allow_loopback:
            raise ToolDenied(f"host '{host}' refused: loopback hosts are not allowed")
        if url.scheme not in ("http", "https"):
            raise ToolDenied("only http(s) URLs are allowed")
    elif url.scheme != "https":
        raise ToolDenied("only https URLs are allowed")
    elif (host, port_of(url)) not in allowed:
        port = port_of(url)
        raise ToolDenied(
            f"port {port} of host '{host}' is not allowed (an entry '{host}:{port}' would allow it)"
        )
    return url.copy_with(host=host)


async def http_get(args: HttpGetArgs, ctx: ToolContext) -> dict[str, Any]:
    """Fetch a URL on an allowed host with GET; returns status, content type and (truncated) text."""
    import httpx

    settings = ctx.settings
    url = checked_url(args.url, settings)
    body = bytearray()
    try:
        async with pinned_stream(
            ctx.http, "GET", url, settings, timeout=settings.http_timeout_seconds
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
