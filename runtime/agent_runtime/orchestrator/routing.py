"""Which delegates get a request: regular-expression rules, or the orchestrator's model.

The model router shows the model each delegate's name and description and asks for strict JSON,
``{"agents": ["name", ...]}``. Anything else (prose, unknown names, an empty list, a failed call) is not
trusted: the request falls back to the rules, so a confused or unavailable model never stops the
orchestrator and never sends work to an agent that is not a delegate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agent_runtime.agents import Agent, AgentCatalog, Orchestration
from agent_runtime.memory.base import Message

ROUTER_REQUEST_HEADER = "Request to route:"
"""First line of the router's user message (scripted test models match on it)."""

RouteSource = Literal["rule", "default", "model", "handoff"]


@dataclass(frozen=True)
class Selection:
    """The chosen delegates, in order, and what chose them (recorded on the span)."""

    agents: tuple[str, ...]
    source: RouteSource
    detail: str = ""


def last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            return content
    return ""


def route_by_rules(orchestration: Orchestration, text: str) -> Selection:
    """The agents of the first rule whose pattern is found in ``text``, else the default agents."""
    for index, rule in enumerate(orchestration.rules):
        if re.search(rule.match, text):
            return Selection(rule.agents, "rule", f"rules.{index}")
    return Selection(orchestration.fallback_agents, "default")


def router_prompt(orchestrator: Agent, catalog: AgentCatalog, text: str, *, single: bool) -> list[Message]:
    """The messages that ask the orchestrator's model to choose among its delegates."""
    assert orchestrator.orchestration is not None
    lines = []
    for name in orchestrator.orchestration.delegates:
        description = catalog.get(name).description or "(no description)"
        lines.append(f"- {name}: {description}")
    how_many = "exactly one agent" if single else "one or more agents"
    system = (
        f"{orchestrator.instructions}\n\n".lstrip()
        + f"Choose {how_many} to handle the user's request, from these agents:\n"
        + "\n".join(lines)
        + '\n\nAnswer with JSON only, no prose: {"agents": ["<name>", ...]}'
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{ROUTER_REQUEST_HEADER}\n{text}"},
    ]


def parse_router_answer(answer: str | None, delegates: Sequence[str], *, single: bool) -> tuple[str, ...]:
    """The agents a router answer names; :class:`ValueError` saying why when it is not usable."""
    try:
        parsed = json.loads(answer or "")
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg})") from error
    if not isinstance(parsed, dict) or set(parsed) != {"agents"}:
        raise ValueError('not an object with exactly the key "agents"')
    agents = parsed["agents"]
    if not isinstance(agents, list) or not agents or not all(isinstance(a, str) for a in agents):
        raise ValueError('"agents" is not a non-empty list of names')
    unknown = [name for name in agents if name not in delegates]
    if unknown:
        raise ValueError(f"'{unknown[0]}' is not a delegate")
    chosen = tuple(dict.fromkeys(agents))
    if single and len(chosen) != 1:
        raise ValueError("handoff needs exactly one agent")
    return chosen
