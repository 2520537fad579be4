"""Outbound requests to URLs that callers or models chose: which addresses they may reach, and reaching
exactly the address that was checked.

A host name is only text: ``127.1``, ``::ffff:127.0.0.1`` or a DNS name that resolves (or, asked again a
moment later, rebinds) to ``127.0.0.1`` or ``169.254.169.254`` all lead somewhere the allow-list never
named. So :func:`pinned_stream` resolves the host once, refuses the request if any of its addresses is not
public, and sends the request to those addresses itself, the next one when one cannot be connected to (a
name with an IPv6 address first, on a host without an IPv6 route); the host name travels in ``Host`` and as
the TLS server name, so the certificate is still verified for the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agent_runtime.errors import ToolDenied

if TYPE_CHECKING:
    import httpx

    from agent_runtime.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64 or the deprecated compatible form): the
    packets go to that address, so it is the one judged."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if embedded := address.ipv4_mapped or address.sixtofour:
        return embedded
    # ::/96 holds ``::`` and ``::1`` too: those are IPv6's own unspecified and loopback addresses.
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def parse_ip(text: str) -> IPAddress | None:
    """``text`` as an IP address in standard notation, or ``None`` if it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_kind(address: IPAddress) -> str | None:
    """What makes ``address`` (or the IPv4 address its IPv6 form carries) non-public, or ``None``."""
    address = _embedded_ipv4(address) or address
    kinds = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        # Whatever else is not routed on the internet (100.64.0.0/10, ...).
        ("non-public", not address.is_global),
    )
    return next((kind for kind, matches in kinds if matches), None)


def refusal(address: IPAddress, allow_loopback: bool) -> str | None:
    """Why ``address`` may not be connected to (it and the rule, for the model or caller to read), or
    ``None`` if it may. Loopback is allowed only with ``allow_loopback`` (``http_allow_loopback``)."""
    kind = address_kind(address)
    if kind is None or (kind == "loopback" and allow_loopback):
        return None
    embedded = _embedded_ipv4(address)
    shown = f"{address} (IPv4 {embedded})" if embedded else str(address)
    rule = "loopback hosts are not allowed" if kind == "loopback" else "only public addresses are allowed"
    return f"{shown} is {kind}, and {rule}"


def port_of(url: httpx.URL) -> int:
    """The port ``url`` connects to (httpx leaves the scheme's default out)."""
    return _DEFAULT_PORTS[url.scheme] if url.port is None else url.port


@contextlib.asynccontextmanager
async def pinned_stream(
    http: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    settings: Settings,
    *,
    timeout: float,
    json: Any = None,
) -> AsyncIterator[httpx.Response]:
    """``http.stream(method, url, ...)`` without redirects, sent to the addresses ``url``'s host resolves to
    now, once every address it resolves to was found public: each in the resolver's order until one
    connects, all within ``timeout``. ``url`` is past the allow-list already (``http_get.checked_url``).
    Raises :class:`ToolDenied` naming the refused address; a host that does not resolve, or none of whose
    addresses connects, is an ``httpx.ConnectError`` (``ConnectTimeout``), as when httpx resolves it."""
    import httpx

    host = url.raw_host.decode("ascii")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout(timeout):
            found = await loop.getaddrinfo(host, port_of(url), type=socket.SOCK_STREAM)
    except TimeoutError:
        raise httpx.ConnectTimeout(f"resolving '{host}' timed out") from None
    except OSError as error:
        raise httpx.ConnectError(f"cannot resolve '{host}': {error}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    for address in addresses:
        if reason := refusal(address, settings.http_allow_loopback):
            raise ToolDenied(f"host '{host}' resolves to {reason}")
    for index, address in enumerate(addresses):
        request = http.build_request(
            method,
            url.copy_with(host=str(address)),
            # The pool keys connections by the address: without ``close`` another allowed name on the same
            # address could reuse this connection, whose certificate was verified for this name only.
            headers={"Host": url.netloc.decode("ascii"), "Connection": "close"},
            extensions={"sni_hostname": host},
            json=json,
            timeout=max(deadline - loop.time(), 0.0),
        )
        try:
            response = await http.send(request, stream=True, follow_redirects=False)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if index + 1 == len(addresses) or loop.time() >= deadline:
                raise
            continue
        try:
            yield response
        finally:
            await response.aclose()
        return
