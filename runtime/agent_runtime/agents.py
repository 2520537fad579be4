"""Agent definitions and the tool-calling loop.

Agents are configuration, not code: ``AGENTSTAGE_AGENTS`` carries a JSON list of definitions, the same
shape a stack file carries::

    [{"name": "assistant", "instructions": "Be brief.", "model": "gpt-4o-mini",
      "tools": ["calculator"], "token_budget": 20000,
      "description": "Shown in GET /v1/agents", "max_steps": 6,
      "memory": {"history_window": 20, "persist": true, "recall_top_k": 0}}]

Only ``name`` is required; ``model``, ``token_budget``, ``max_steps`` and ``max_output_tokens`` default to
the settings' ``default_model``, ``default_token_budget``, ``max_steps`` and ``max_output_tokens``. Unknown
keys and unknown tools are refused at startup with the agent and key named, so a typo fails the deployment
rather than a request.

Resilience and routing keys (all optional): ``"fallback_models": ["gpt-4o-secondary"]`` (deployments tried
when the model fails), ``"fallback_agent": "other"`` (answers when every deployment fails) and
``"routing"`` (see :mod:`agent_runtime.governance.routing`). The loop that runs an agent is
:mod:`agent_runtime.runner`.

An agent of ``"kind": "orchestrator"`` runs no tool loop of its own: it picks some of its delegates,
hands each a sub-task over the message bus and answers with what they answered (see
:mod:`agent_runtime.orchestrator`)::

    {"name": "lead", "kind": "orchestrator", "description": "Researches, then writes.",
     "orchestration": {"delegates": ["research", "writer"], "router": "rules",
                       "rules": [{"match": "(?i)find|search", "agents": ["research"]}],
                       "default_agents": ["writer"], "mode": "fan_out", "aggregate": "concat",
                       "subtask_deadline_seconds": 30, "roles": ["user"]}}

Delegates must be other agents of kind ``agent`` (no nested orchestrators, so delegation cannot cycle).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent_runtime.errors import ConfigurationError, UnknownAgent
from agent_runtime.governance.routing import RoutingPolicy
from agent_runtime.settings_contract import SettingsContract
from agent_runtime.tools import ToolRegistry


class MemoryPolicy(BaseModel):
    """What an agent remembers between requests that share a conversation id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    history_window: int = Field(default=20, ge=0, description="Earlier messages replayed to the model.")
    persist: bool = Field(default=True, description="Store the request's messages and the answer.")
    recall_top_k: int = Field(
        default=0, ge=0, le=20, description="Passages of long-term memory recalled into the prompt (0: none)."
    )


class RoutingRule(BaseModel):
    """Delegate to ``agents`` when ``match`` (a regular expression) is found in the last user message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(min_length=1)
    agents: tuple[str, ...] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from error
        return pattern


class Orchestration(BaseModel):
    """How an orchestrator picks its delegates, runs them and answers.

    ``router``: ``rules`` takes the agents of the first matching rule; ``model`` asks the orchestrator's
    model to choose among the delegates (strict JSON), falling back to the rules on a malformed answer.
    With no rule matching, ``default_agents`` (all delegates when empty) are chosen. ``mode``:
    ``fan_out`` runs every chosen delegate concurrently and aggregates (``concat``: each answer under its
    agent's name; ``model``: the orchestrator's model writes one answer from them); ``handoff`` gives the
    conversation to the first chosen delegate, whose answer is the answer and who keeps the conversation.
    ``subtask_deadline_seconds`` bounds the wait for delegates; late ones are reported, never awaited.
    ``roles``: callers with any of them may use the orchestrator (empty: every authenticated caller).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delegates: tuple[str, ...] = Field(min_length=1)
    router: Literal["rules", "model"] = "rules"
    rules: tuple[RoutingRule, ...] = ()
    default_agents: tuple[str, ...] = ()
    mode: Literal["fan_out", "handoff"] = "fan_out"
    aggregate: Literal["concat", "model"] = "concat"
    subtask_deadline_seconds: float = Field(default=30.0, gt=0, le=3600)
    roles: frozenset[str] = frozenset()

    @property
    def fallback_agents(self) -> tuple[str, ...]:
        """Who is chosen when no rule matches."""
        return self.default_agents or self.delegates

    def referenced_agents(self) -> Iterator[tuple[str, str]]:
        """Every (key, agent name) the section names, for validation against the catalog."""
        for index, name in enumerate(self.delegates):
            yield f"orchestration.delegates.{index}", name
        for index, rule in enumerate(self.rules):
            for position, name in enumerate(rule.agents):
                yield f"orchestration.rules.{index}.agents.{position}", name
        for index, name in enumerate(self.default_agents):
            yield f"orchestration.default_agents.{index}", name


class Agent(BaseModel):
    """One agent definition, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    instructions: str = ""
    description: str = ""
    model: str = Field(min_length=1)
    tools: tuple[str, ...] = ()
    token_budget: int = Field(gt=0)
    max_steps: int = Field(gt=0, le=100)
    max_output_tokens: int = Field(
        gt=0, le=1_000_000, description="Cap on one answer of this agent's model; budgets hold this much."
    )
    memory: MemoryPolicy = MemoryPolicy()
    fallback_models: tuple[str, ...] = Field(
        default=(), description="Deployments tried, in order, when the model fails or its breaker is open."
    )
    fallback_agent: str | None = Field(
        default=None, description="Agent that answers instead when every deployment of this one fails."
    )
    routing: RoutingPolicy | None = None
    kind: Literal["agent", "orchestrator"] = "agent"
    orchestration: Orchestration | None = None

    @model_validator(mode="after")
    def _orchestration_matches_kind(self) -> Agent:
        if self.kind == "orchestrator":
            if self.orchestration is None:
                raise ValueError("an orchestrator needs an 'orchestration' section")
            if self.tools:
                raise ValueError("an orchestrator delegates and runs no tools itself; remove 'tools'")
        elif self.orchestration is not None:
            raise ValueError("'orchestration' is only for agents of kind 'orchestrator'")
        return self


class AgentCatalog:
    """The configured agents, by name."""

    def __init__(self, agents: Sequence[Agent]) -> None:
        self._agents = {agent.name: agent for agent in agents}

    @classmethod
    def from_settings(cls, settings: SettingsContract, registry: ToolRegistry) -> AgentCatalog:
        return cls(parse_agents(settings.agents, settings, registry))

    def get(self, name: str, *, request_field: str = "agent") -> Agent:
        """The agent, or :class:`UnknownAgent` naming the request field that asked for it."""
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(f"no agent named '{name}'", field=request_field) from None

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)


def parse_agents(raw: str | list[Any], settings: SettingsContract, registry: ToolRegistry) -> list[Agent]:
    """Agent definitions from JSON text (or an already-parsed list), each naming only tools ``registry``
    has; :class:`ConfigurationError` if wrong."""
    agents = parse_definitions(raw, settings)
    for agent in agents:
        unknown = [name for name in agent.tools if name not in registry]
        if unknown:
            known = ", ".join(sorted(tool.name for tool in registry))
            raise ConfigurationError(
                f"agent '{agent.name}': unknown tool '{unknown[0]}' (registered: {known})"
            )
    names = {agent.name for agent in agents}
    for agent in agents:
        if agent.fallback_agent is not None and agent.fallback_agent not in names - {agent.name}:
            raise ConfigurationError(
                f"agent '{agent.name}': fallback_agent '{agent.fallback_agent}' must name another agent"
            )
    _check_orchestrations(agents, settings)
    return agents


def parse_definitions(raw: str | list[Any], settings: SettingsContract) -> list[Agent]:
    """Agent definitions from JSON text (or an already-parsed list), with the settings' defaults and unique
    names; whether their tools exist is :func:`parse_agents`' concern."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"AGENTSTAGE_AGENTS is not valid JSON: {error}") from error
    if not isinstance(raw, list):
        raise ConfigurationError("AGENTSTAGE_AGENTS must be a JSON list of agent definitions")
    agents: list[Agent] = []
    for index, entry in enumerate(raw):
        agent = _parse_agent(index, entry, settings)
        if any(known.name == agent.name for known in agents):
            raise ConfigurationError(f"agent '{agent.name}' is defined twice")
        agents.append(agent)
    return agents


def _check_orchestrations(agents: Sequence[Agent], settings: SettingsContract) -> None:
    """Every agent an orchestration names is a plain agent of this catalog, and a delegate of it; and the
    wait for delegates ends before the run's own deadline, so partial results still reach the caller."""
    kinds = {agent.name: agent.kind for agent in agents}
    for agent in agents:
        if agent.orchestration is None:
            continue
        wait = agent.orchestration.subtask_deadline_seconds
        if wait >= settings.deadline_seconds:
            raise ConfigurationError(
                f"agent '{agent.name}': 'orchestration.subtask_deadline_seconds' ({wait:g}) must be less than "
                f"AGENTSTAGE_DEADLINE_SECONDS ({settings.deadline_seconds:g}), which bounds the whole run"
            )
        delegates = set(agent.orchestration.delegates)
        for key, name in agent.orchestration.referenced_agents():
            if name not in kinds:
                raise ConfigurationError(f"agent '{agent.name}': '{key}': unknown agent '{name}'")
            if kinds[name] != "agent":
                raise ConfigurationError(
                    f"agent '{agent.name}': '{key}': '{name}' is an orchestrator; delegates must be "
                    "agents of kind 'agent'"
                )
            if name not in delegates:
                raise ConfigurationError(
                    f"agent '{agent.name}': '{key}': '{name}' is not one of orchestration.delegates"
                )


def _parse_agent(index: int, entry: Any, settings: SettingsContract) -> Agent:
    label = (
        f"'{entry['name']}'"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
        else f"#{index}"
    )
    if not isinstance(entry, dict):
        raise ConfigurationError(f"agent {label} must be a JSON object")
    defaults = {
        "model": settings.default_model,
        "token_budget": settings.default_token_budget,
        "max_steps": settings.max_steps,
        "max_output_tokens": settings.max_output_tokens,
    }
    try:
        return Agent.model_validate(defaults | entry)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigurationError(f"agent {label}: unknown key '{key}'") from error
        if not key:
            raise ConfigurationError(
                f"agent {label}: {first['msg'].removeprefix('Value error, ')}"
            ) from error
        raise ConfigurationError(f"agent {label}: '{key}': {first['msg']}") from error
