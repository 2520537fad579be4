"""Scripts of the scripted model: ordered rules that decide each reply and tool call, deterministically.

A rule matches the text of the request's last message (a regular expression, searched) when that message
has the rule's role (``on``: ``"user"``, ``"tool"`` or ``"any"``). The first matching rule answers with
``reply`` and/or ``tool_calls``; ``\\1`` and ``\\g<name>`` in the reply, in tool names and in string tool
arguments are filled from the match. When no rule matches, the model echoes: the user's text, or the tool
results.

Scripts can also come from JSON (``python -m agent_runtime.testing --script FILE``)::

    {"rules": [{"pattern": "what is (?P<e>.+)\\\\?", "tool_calls": [{"name": "calculator",
                "arguments": {"expression": "\\\\g<e>"}}]}]}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ScriptedToolCall(BaseModel):
    """A tool call the model will ask for: its name and arguments (a dict, or raw JSON text sent as-is)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class Rule(BaseModel):
    """When the last message matches, reply and/or call tools (after ``delay`` seconds).

    ``status`` other than 200 answers with that HTTP error instead, to test upstream failures. A streamed
    reply comes one word per chunk, or in pieces of ``chunk_sizes`` characters (cycled) — real models
    stream token-sized pieces that split words, numbers and keys anywhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = r"(?s).*"
    reply: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    on: Literal["user", "tool", "any"] = "user"
    delay: float = Field(default=0.0, ge=0)
    status: int = Field(default=200, ge=200, le=599)
    chunk_sizes: tuple[Annotated[int, Field(ge=1)], ...] = ()

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def match(self, role: str, text: str) -> re.Match[str] | None:
        if self.on != "any" and self.on != role:
            return None
        return self.regex.search(text)


@dataclass(frozen=True)
class Reply:
    """What the model answers to one request."""

    content: str | None
    tool_calls: tuple[tuple[str, str, Any], ...]
    """(id, name, arguments) of each tool call; arguments are a dict or raw JSON text."""

    delay: float = 0.0
    status: int = 200
    chunk_sizes: tuple[int, ...] = ()
    """Characters per streamed content piece, cycled; empty: one piece per word."""


class Script:
    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_json(cls, data: Any) -> Script:
        """From ``{"rules": [...]}`` or a bare list of rules (the fields of :class:`Rule`)."""
        return cls(_ScriptSpec.model_validate({"rules": data} if isinstance(data, list) else data).rules)

    def reply(self, messages: Sequence[dict[str, Any]]) -> Reply:
        if not messages:
            return Reply("", ())
        role = str(messages[-1].get("role", ""))
        text = _text(messages[-1])
        for rule in self.rules:
            found = rule.match(role, text)
            if found is not None:
                calls = tuple(
                    (f"call_{len(messages)}_{index}", found.expand(call.name), _expand(call.arguments, found))
                    for index, call in enumerate(rule.tool_calls)
                )
                content = found.expand(rule.reply) if rule.reply is not None else None
                return Reply(
                    content if content is not None or calls else "",
                    calls,
                    rule.delay,
                    rule.status,
                    rule.chunk_sizes,
                )
        return Reply(_echo(messages), ())


def _echo(messages: Sequence[dict[str, Any]]) -> str:
    """The user's last text, or the results of the tool calls answering the last assistant message."""
    if messages[-1].get("role") != "tool":
        return _text(messages[-1])
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(_text(message))
    return "\n".join(reversed(results))


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _expand(value: Any, found: re.Match[str]) -> Any:
    if isinstance(value, str):
        return found.expand(value)
    if isinstance(value, dict):
        return {key: _expand(item, found) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, found) for item in value]
    return value


class _ScriptSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[Rule]


CALL_PATTERN = r"(?is)^\s*call\s+(?P<tool>[A-Za-z0-9_-]{1,64})\s+(?P<arguments>\{.*\})\s*$"
"""``call <tool> <JSON arguments>``: the default script calls that tool with those arguments, as written."""


def default_script() -> Script:
    """The script of ``agentstage dev``: arithmetic questions go to the calculator; ``call <tool> {...}``
    calls any tool (a custom one too) with the JSON arguments given; anything else echoes."""
    return Script(
        [
            Rule(
                pattern=CALL_PATTERN,
                tool_calls=(ScriptedToolCall(name=r"\g<tool>", arguments=r"\g<arguments>"),),
            ),
            Rule(
                pattern=r"(?i)(?:what is|calculate|compute)\s+(?P<expression>[-+*/%().\d\s]+?)\s*\??\s*$",
                tool_calls=(
                    ScriptedToolCall(name="calculator", arguments={"expression": r"\g<expression>"}),
                ),
            ),
            Rule(pattern=r"^-?[\d.]+(?:e[-+]?\d+)?$", on="tool", reply=r"The answer is \g<0>."),
        ]
    )
