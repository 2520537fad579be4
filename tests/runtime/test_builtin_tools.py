"""The built-in tools: the safe calculator and the allow-listed http_get (against loopback servers)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dns_helpers import Resolver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route
from tls_helpers import tls_files

from agent_runtime.caller import Caller
from agent_runtime.errors import ToolDenied, ToolError
from agent_runtime.knowledge.factory import KnowledgeAccess
from agent_runtime.llm import LLM
from agent_runtime.outbound import pinned_stream
from agent_runtime.settings import Settings
from agent_runtime.testing import ServerThread
from agent_runtime.tools import ToolContext
from agent_runtime.tools.builtins.calculator import evaluate
from agent_runtime.tools.builtins.http_get import HttpGetArgs, checked_url, http_get


@pytest.mark.parametrize(
    ("expression", "value"),
    [("(2 + 3) * 4 ** 2", 80), ("-7 // 2", -4), ("7 % 3", 1), ("1 / 4", 0.25), ("2 ** 1000 > 0", None)],
)
def test_calculator_evaluates_arithmetic(expression: str, value: float | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match="'Compare' is not allowed"):
            evaluate(expression)
    else:
        assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('id')", "'Call' is not allowed"),
        ("x + 1", "'Name' is not allowed"),
        ("(1).real", "'Attribute' is not allowed"),
        ("'a' * 3", "'Constant' is not allowed"),
        ("True + 1", "'Constant' is not allowed"),
        ("9 ** 9 ** 9", "exponents are limited"),
        ("2 ** 999 * 2 ** 999 * 2 ** 999 * 2 ** 999 * 2 ** 999", "the result is too large"),
        ("10.0 ** 400", "the result is too large"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 / 0", "division by zero"),
        ("1 +", "not an arithmetic expression"),
    ],
)
def test_calculator_refuses_everything_else(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(expression)


def origin_app() -> Starlette:
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello from origin")

    async def big(request: Request) -> PlainTextResponse:
        return PlainTextResponse("z" * 5000)

    async def moved(request: Request) -> RedirectResponse:
        return RedirectResponse("http://elsewhere.test/", status_code=302)

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.sleep(0.8)
        return PlainTextResponse("late")

    routes = [("/", page), ("/big", big), ("/moved", moved), ("/slow", slow)]
    return Starlette(routes=[Route(path, endpoint) for path, endpoint in routes])


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with ServerThread(origin_app()) as server:
        yield server.url


def fetch(url: str, transport: httpx.AsyncBaseTransport | None = None, **settings: Any) -> Any:
    values = {"http_allowed_hosts": ["127.0.0.1"], "http_allow_loopback": True} | settings
    config = Settings(**values)

    async def call() -> Any:
        async with httpx.AsyncClient(transport=transport) as http:
            context = ToolContext(
                caller=Caller("t"),
                agent="a",
                settings=config,
                llm=LLM.from_settings(config),
                vectors=None,  # type: ignore[arg-type]
                http=http,
                knowledge=KnowledgeAccess(config),
            )
            return await http_get(HttpGetArgs(url=url), context)

    return asyncio.run(call())


def test_http_get_fetches_an_allowed_host(origin: str) -> None:
    result = fetch(f"{origin}/")
    assert result == {
        "status": 200,
        "content_type": "text/plain; charset=utf-8",
        "body": "hello from origin",
        "truncated": False,
    }


def test_http_get_cuts_large_bodies(origin: str) -> None:
    result = fetch(f"{origin}/big", http_max_bytes=1000)
    assert (len(result["body"]), result["truncated"]) == (1000, True)


def test_http_get_does_not_follow_redirects(origin: str) -> None:
    result = fetch(f"{origin}/moved")
    assert (result["status"], result["location"]) == (302, "http://elsewhere.test/")


def test_http_get_times_out(origin: str) -> None:
    with pytest.raises(ToolError, match="request failed: ReadTimeout"):
        fetch(f"{origin}/slow", http_timeout_seconds=0.2)


@pytest.mark.parametrize(
    ("url", "settings", "message"),
    [
        ("https://example.com/", {}, "host 'example.com' is not in the allow-list"),
        ("https://sub.allowed.test/", {}, "host 'sub.allowed.test' is not in the allow-list"),
        ("http://allowed.test/", {}, "only https URLs are allowed"),
        ("ftp://allowed.test/", {}, "only https URLs are allowed"),
        ("http://127.0.0.1/", {"http_allowed_hosts": ["127.0.0.1"]}, "loopback hosts are not allowed"),
        ("https://localhost/", {"http_allowed_hosts": ["localhost"]}, "loopback hosts are not allowed"),
        ("https://127.0.0.1/", {}, "host '127.0.0.1' is not in the allow-list"),
    ],
)
def test_http_get_refuses_urls_outside_policy(url: str, settings: dict[str, Any], message: str) -> None:
    config = Settings(**({"http_allowed_hosts": ["allowed.test"]} | settings))
    with pytest.raises(ToolDenied, match=message):
        checked_url(url, config)


def test_http_get_allows_https_on_an_exact_host_match() -> None:
    config = Settings(http_allowed_hosts=["Allowed.Test"])
    assert str(checked_url("https://allowed.test/path?q=1", config)) == "https://allowed.test/path?q=1"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("0.0.0.0", "0.0.0.0 is unspecified"),
        ("[::]", ":: is unspecified"),
        ("[::ffff:127.0.0.1]", r"\(IPv4 127.0.0.1\) is loopback, and loopback hosts are not allowed"),
        ("[::127.0.0.1]", r"\(IPv4 127.0.0.1\) is loopback"),
        ("[2002:7f00:1::]", r"\(IPv4 127.0.0.1\) is loopback"),
        ("[64:ff9b::a9fe:a9fe]", r"\(IPv4 169.254.169.254\) is link-local"),
        ("localhost.", "host 'localhost' refused: loopback hosts are not allowed"),
        ("foo.localhost", "host 'foo.localhost' refused: loopback hosts are not allowed"),
        ("169.254.169.254", "169.254.169.254 is link-local, and only public addresses are allowed"),
        ("[fe80::1]", "fe80::1 is link-local"),
        ("10.0.0.5", "10.0.0.5 is private"),
        ("172.16.0.1", "172.16.0.1 is private"),
        ("192.168.1.1", "192.168.1.1 is private"),
        ("[fd00::1]", "fd00::1 is private"),
        ("224.0.0.1", "224.0.0.1 is multicast"),
        ("240.0.0.1", "240.0.0.1 is reserved"),
        ("100.64.0.1", "100.64.0.1 is non-public"),
        ("127.1", "host '127.1' is not a canonical IP address"),
        ("2130706433", "host '2130706433' is not a canonical IP address"),
        ("0x7f.0.0.1", "host '0x7f.0.0.1' is not a canonical IP address"),
    ],
)
def test_http_get_refuses_non_public_addresses_in_any_spelling_even_when_listed(
    host: str, message: str
) -> None:
    config = Settings(http_allowed_hosts=[host.strip("[]")])
    with pytest.raises(ToolDenied, match=message):
        checked_url(f"https://{host}/latest/meta-data/", config)


@pytest.mark.parametrize(
    ("url", "hosts", "error", "message"),
    [
        (
            "https://allowed.test:99999/",
            ["allowed.test"],
            ToolError,
            "invalid URL: port 99999 is not in 1-65535",
        ),
        ("https://allowed.test:0/", ["allowed.test"], ToolError, "invalid URL: port 0 is not in 1-65535"),
        ("https://0177.0.0.1/", ["0177.0.0.1"], ToolError, "invalid URL: Invalid IPv4 address"),
        (
            "https://allowed.test:22/",
            ["allowed.test"],
            ToolDenied,
            "port 22 of host 'allowed.test' is not allowed",
        ),
        ("https://allowed.test/", ["allowed.test:8443"], ToolDenied, "port 443 of host 'allowed.test'"),
        ("https://allowed.test:8444/", ["allowed.test:8443"], ToolDenied, "port 8444 of host 'allowed.test'"),
    ],
)
def test_http_get_refuses_invalid_ports_and_ports_no_entry_names(
    url: str, hosts: list[str], error: type[ToolError], message: str
) -> None:
    with pytest.raises(error, match=message):
        checked_url(url, Settings(http_allowed_hosts=hosts))


def test_http_get_allows_the_default_port_or_the_one_the_entry_names_in_canonical_form() -> None:
    config = Settings(http_allowed_hosts=["allowed.test:8443", "Allowed.Test.", "[2606:4700:0::1111]:8443"])
    assert checked_url("https://allowed.test:8443/", config).port == 8443
    assert str(checked_url("https://ALLOWED.test.:443/x", config)) == "https://allowed.test/x"
    assert checked_url("https://[2606:4700:0:0::1111]:8443/", config).host == "2606:4700::1111"


def recording_transport(sent: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, text="reached")

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("addresses", "loopback", "message"),
    [
        (["169.254.169.254"], False, "host 'name.test' resolves to 169.254.169.254 is link-local"),
        (["10.1.2.3"], True, "host 'name.test' resolves to 10.1.2.3 is private"),
        (["127.0.0.1"], False, "resolves to 127.0.0.1 is loopback, and loopback hosts are not allowed"),
        (["::ffff:169.254.169.254"], False, r"\(IPv4 169.254.169.254\) is link-local"),
        ([], False, "request failed: ConnectError"),
    ],
)
def test_http_get_refuses_a_name_that_resolves_to_a_non_public_address(
    resolver: Resolver, addresses: list[str], loopback: bool, message: str
) -> None:
    resolver.answer("name.test", *addresses)
    sent: list[httpx.Request] = []
    with pytest.raises(ToolError, match=message):
        fetch(
            "https://name.test/",
            recording_transport(sent),
            http_allowed_hosts=["name.test"],
            http_allow_loopback=loopback,
        )
    assert sent == []


def test_http_get_refuses_a_name_if_any_of_its_addresses_is_not_public(resolver: Resolver) -> None:
    resolver.answer("two.test", "93.184.216.34", "127.0.0.1")
    sent: list[httpx.Request] = []
    with pytest.raises(ToolDenied, match="host 'two.test' resolves to 127.0.0.1 is loopback"):
        fetch(
            "https://two.test/",
            recording_transport(sent),
            http_allowed_hosts=["two.test"],
            http_allow_loopback=False,
        )
    assert sent == []


@pytest.mark.parametrize("first", ["::1", "127.0.0.2"])
def test_http_get_tries_the_next_checked_address_when_one_cannot_be_connected_to(
    origin: str, first: str, resolver: Resolver
) -> None:
    """A name whose first address has no route or no listener here (IPv6 first on an IPv4-only host): the
    guard every outbound request takes (http_get, task callbacks) goes on to the next checked address."""
    port = httpx.URL(origin).port
    resolver.answer("dual.test", first, "127.0.0.1")

    async def get() -> tuple[int, bytes]:
        async with (
            httpx.AsyncClient() as http,
            pinned_stream(
                http,
                "GET",
                httpx.URL(f"http://dual.test:{port}/"),
                Settings(http_allow_loopback=True),
                timeout=5,
            ) as response,
        ):
            return response.status_code, await response.aread()

    assert asyncio.run(get()) == (200, b"hello from origin")


def test_http_get_connects_to_the_address_it_checked_with_the_name_for_host_and_tls(
    resolver: Resolver,
) -> None:
    """Resolved once: a rebinding resolver's second answer (loopback) is never asked for, let alone used."""
    resolver.answer("rebind.test", "93.184.216.34")
    resolver.answer("rebind.test", "127.0.0.1")
    sent: list[httpx.Request] = []
    result = fetch(
        "https://rebind.test:8443/p?q=1",
        recording_transport(sent),
        http_allowed_hosts=["rebind.test:8443"],
        http_allow_loopback=False,
    )
    [request] = sent
    assert (result["status"], result["body"], resolver.asked) == (200, "reached", ["rebind.test"])
    assert str(request.url) == "https://93.184.216.34:8443/p?q=1"
    assert request.headers["host"] == "rebind.test:8443"
    assert request.extensions["sni_hostname"] == "rebind.test"


def _tls_origin(server_tls: ssl.SSLContext, names: list[str]) -> tuple[ssl.SSLContext, bytes]:
    """``server_tls`` recording the server names clients ask for, and a canned response."""
    server_tls.sni_callback = lambda connection, name, context: names.append(name)  # type: ignore[assignment,misc,return-value]
    return server_tls, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.mark.parametrize("certified", ["origin.test", "other.test"])
def test_http_get_reaches_an_allowed_https_name_and_verifies_its_certificate(
    certified: str, resolver: Resolver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The name resolves to loopback (allowed explicitly here); TLS is still made and checked for the name."""
    ca_file, server_tls = tls_files(tmp_path, certified)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    resolver.answer("origin.test", "127.0.0.1")
    names: list[str] = []
    heads: list[bytes] = []
    context, response = _tls_origin(server_tls, names)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(response)
        await writer.drain()
        writer.close()

    async def scenario() -> Any:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            return port, await asyncio.to_thread(
                fetch, f"https://origin.test:{port}/x", http_allowed_hosts=[f"origin.test:{port}"]
            )
        finally:
            server.close()

    if certified == "other.test":
        with pytest.raises(ToolError, match="request failed: ConnectError"):
            asyncio.run(scenario())
        assert (names, heads) == (["origin.test"], []), "nothing is sent to a server that is not the name"
        return
    port, result = asyncio.run(scenario())
    assert (result["status"], result["body"], names) == (200, "ok", ["origin.test"])
    assert f"host: origin.test:{port}\r\n".encode() in heads[0].lower()


def test_tool_specs_are_what_the_model_sees() -> None:
    from agent_runtime.tools import default_registry

    [spec] = default_registry.specs(["http_get"])
    assert spec["function"]["parameters"]["properties"]["url"]["maxLength"] == 2048
    assert json.dumps(spec)  # serialisable as sent
