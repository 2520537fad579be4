"""Shared pieces of the runtime tests: the model script, test tools, and a client for a served runtime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from agent_runtime.settings import Settings
from agent_runtime.testing import Rule, Script, ScriptedToolCall, ServerThread
from agent_runtime.tools import ToolContext, ToolRegistry
from agent_runtime.tools.builtins import builtin_tools

USER_KEY = "user-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
API_KEYS = {
    USER_KEY: {"caller": "alice", "roles": ["user"]},
    ADMIN_KEY: {"caller": "bob", "roles": ["user", "admin"]},
}

AGENTS = [
    {
        "name": "assistant",
        "instructions": "Be brief.",
        "tools": ["calculator", "admin_report", "again", "nap", "memory_search", "http_get", "charge"],
        "memory": {"history_window": 10},
    },
    {"name": "restricted", "instructions": "Only arithmetic.", "tools": ["calculator"]},
]


PLANTED = {
    "api_key": "sk-proj-Q7vN2mXk9LpR4tW8yZ1aB3cD5eF6gH",
    "aws_key_id": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "email": "ada.lovelace@example.com",
    "card": "4111 1111 1111 1111",
}
"""A value of each kind a model was made to leak in the streaming report: an OpenAI key, an AWS access key
id, a GitHub token, an e-mail address and a card number."""
LEAKY_ANSWER = (
    "Here is what I found: the OpenAI key {api_key}, the AWS key id {aws_key_id}, the GitHub token "
    "{github_token}; write to {email} and pay with {card}."
).format(**PLANTED)
LEAK_CHUNKS = (1, 3, 2, 4, 1, 2, 4, 3)
"""Token-sized pieces, as real models stream: every planted value is split several times."""


def calls(name: str, arguments: dict[str, Any] | str) -> tuple[ScriptedToolCall, ...]:
    return (ScriptedToolCall(name=name, arguments=arguments),)


SCRIPT = Script(
    [
        Rule(pattern=r"^calc (?P<e>.+)$", tool_calls=calls("calculator", {"expression": r"\g<e>"})),
        Rule(pattern=r"^fetch (?P<url>\S+)$", tool_calls=calls("http_get", {"url": r"\g<url>"})),
        Rule(
            pattern=r"^search (?P<q>.+)$", tool_calls=calls("memory_search", {"query": r"\g<q>", "top_k": 2})
        ),
        Rule(pattern=r"^knowledge (?P<q>.+)$", tool_calls=calls("knowledge_search", {"query": r"\g<q>"})),
        Rule(pattern=r"^report$", tool_calls=calls("admin_report", {"topic": "payroll"})),
        Rule(pattern=r"^bad args$", tool_calls=calls("admin_report", {"topic": 42, "extra": True})),
        Rule(pattern=r"^bad json$", tool_calls=calls("calculator", "{not json")),
        Rule(pattern=r"^nap$", tool_calls=calls("nap", {"seconds": 5})),
        # "again" answers "loop again", which this rule answers with another call: the model never stops.
        Rule(pattern=r"loop", on="any", tool_calls=calls("again", {})),
        Rule(pattern=r"^slow$", delay=1.5, reply="too late"),
        Rule(pattern=r"^fail$", status=500),
        Rule(pattern=r"^two tools$", tool_calls=calls("calculator", {"expression": "1+1"}) * 2),
        Rule(pattern=r"^story$", reply="once upon a time there was an agent"),
        Rule(pattern=r"^leak$", reply=LEAKY_ANSWER, chunk_sizes=LEAK_CHUNKS),
        # An obedient model: whatever text (user input or tool output) tells it to call admin_report, it does.
        Rule(
            pattern=r"(?i)call admin_report",
            on="any",
            tool_calls=calls("admin_report", {"topic": "salaries"}),
        ),
        Rule(pattern=r"^charge (?P<amount>\d+)$", tool_calls=calls("charge", {"amount": r"\g<amount>"})),
    ]
)


class ReportArgs(BaseModel):
    topic: str


class NoArgs(BaseModel):
    pass


class NapArgs(BaseModel):
    seconds: float


class ChargeArgs(BaseModel):
    amount: int


EXECUTED: list[str] = []
"""Tool executions of the custom tools, to prove a refused call never ran."""


async def admin_report(args: ReportArgs, ctx: ToolContext) -> str:
    """A report only admins may read."""
    EXECUTED.append(f"admin_report:{args.topic}:{ctx.caller.id}")
    return f"report on {args.topic}"


async def again(args: NoArgs, ctx: ToolContext) -> str:
    """Ask the model to go on."""
    return "loop again"


async def nap(args: NapArgs, ctx: ToolContext) -> str:
    """Sleep (to exceed the tool timeout)."""
    await asyncio.sleep(args.seconds)
    return "rested"


async def charge(args: ChargeArgs, ctx: ToolContext) -> str:
    """Charge the caller (a side effect that must not repeat)."""
    EXECUTED.append(f"charge:{args.amount}")
    return f"charged {args.amount} (charge #{EXECUTED.count(f'charge:{args.amount}')})"


def make_registry() -> ToolRegistry:
    registry = ToolRegistry(builtin_tools())
    registry.tool(roles={"admin"})(admin_report)
    registry.tool()(again)
    registry.tool()(nap)
    registry.tool(side_effects=True)(charge)
    return registry


RuntimeFactory = Callable[..., "Runtime"]


class Runtime:
    """A served runtime and an HTTP client for it."""

    def __init__(self, server: ServerThread, settings: Settings) -> None:
        self.server = server
        self.settings = settings
        self.url = server.url
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def close(self) -> None:
        self.http.close()
        self.server.stop()

    def post(self, path: str, body: Any, key: str | None = USER_KEY, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.http.post(path, json=body, headers=headers | kwargs.pop("headers", {}), **kwargs)

    def invoke(self, agent: str, text: str, key: str | None = USER_KEY, **body: Any) -> httpx.Response:
        return self.post(f"/v1/agents/{agent}/invoke", {"input": text, **body}, key)


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "agentstage.audit"]


def answer_to_an_oversized_head(port: int) -> tuple[bytes, dict[str, Any]]:
    """Send a 1 MiB header to a served runtime (as the container and ``agentstage dev`` serve it); its
    answer's status line and JSON body, read while the header was still arriving."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(64):
                client.sendall(b"a" * 16384)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)
