"""The built-in tools: the safe calculator and the allow-listed http_get (against loopback servers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from agent_runtime.caller import Caller
from agent_runtime.errors import ToolDenied, ToolError
from agent_runtime.knowledge.factory import KnowledgeAccess
from agent_runtime.llm import LLM
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


def fetch(url: str, **settings: Any) -> Any:
    values = {"http_allowed_hosts": ["127.0.0.1"], "http_allow_loopback": True} | settings
    config = Settings(**values)

    async def call() -> Any:
        async with httpx.AsyncClient() as http:
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


def test_tool_specs_are_what_the_model_sees() -> None:
    from agent_runtime.tools import default_registry

    [spec] = default_registry.specs(["http_get"])
    assert spec["function"]["parameters"]["properties"]["url"]["maxLength"] == 2048
    assert json.dumps(spec)  # serialisable as sent
