"""Agent definitions and the tool-calling loop.

Agents are configuration, not code: ``AGENTSTAGE_AGENTS`` carries a JSON list of definitions, the same
shape a stack file carries::

    [{"name": "assistant", "instructions": "Be brief.", "model": "gpt-4o-mini",
      "tools": ["calculator"], "token_budget": 20000,
      "description": "Shown in GET /v1/agents", "max_steps": 6,
      "memory": {"history_window": 20, "persist": true, "recall_top_k": 0}}]

Only ``name`` is required; ``model``, ``token_budget`` and ``max_steps`` default to the settings'
``default_model``, ``default_token_budget`` and ``max_steps``. Unknown keys and unknown tools are refused
at startup with the agent and key named, so a typo fails the deployment rather than a request.

Resilience and routing keys (all optional): ``"fallback_models": ["gpt-4o-secondary"]`` (deployments tried
when the model fails), ``"fallback_agent": "other"`` (answers when every deployment fails) and
``"routing"`` (see :mod:`agent_runtime.governance.routing`). The loop that runs an agent is
:mod:`agent_runtime.runner`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_runtime.errors import ConfigurationError, UnknownAgent
from agent_runtime.governance.routing import RoutingPolicy
from agent_runtime.settings import Settings
from agent_runtime.tools import ToolRegistry


class MemoryPolicy(BaseModel):
    """What an agent remembers between requests that share a conversation id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    history_window: int = Field(default=20, ge=0, description="Earlier messages replayed to the model.")
    persist: bool = Field(default=True, description="Store the request's messages and the answer.")
    recall_top_k: int = Field(
        default=0, ge=0, le=20, description="Passages of long-term memory recalled into the prompt (0: none)."
    )


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
    memory: MemoryPolicy = MemoryPolicy()
    fallback_models: tuple[str, ...] = Field(
        default=(), description="Deployments tried, in order, when the model fails or its breaker is open."
    )
    fallback_agent: str | None = Field(
        default=None, description="Agent that answers instead when every deployment of this one fails."
    )
    routing: RoutingPolicy | None = None


class AgentCatalog:
    """The configured agents, by name."""

    def __init__(self, agents: Sequence[Agent]) -> None:
        self._agents = {agent.name: agent for agent in agents}

    @classmethod
    def from_settings(cls, settings: Settings, registry: ToolRegistry) -> AgentCatalog:
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


def parse_agents(raw: str | list[Any], settings: Settings, registry: ToolRegistry) -> list[Agent]:
    """Agent definitions from JSON text (or an already-parsed list); :class:`ConfigurationError` if wrong."""
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
        unknown = [name for name in agent.tools if name not in registry]
        if unknown:
            known = ", ".join(sorted(tool.name for tool in registry))
            raise ConfigurationError(
                f"agent '{agent.name}': unknown tool '{unknown[0]}' (registered: {known})"
            )
        agents.append(agent)
    names = {agent.name for agent in agents}
    for agent in agents:
        if agent.fallback_agent is not None and agent.fallback_agent not in names - {agent.name}:
            raise ConfigurationError(
                f"agent '{agent.name}': fallback_agent '{agent.fallback_agent}' must name another agent"
            )
    return agents


def _parse_agent(index: int, entry: Any, settings: Settings) -> Agent:
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
    }
    try:
        return Agent.model_validate(defaults | entry)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigurationError(f"agent {label}: unknown key '{key}'") from error
        raise ConfigurationError(f"agent {label}: '{key}': {first['msg']}") from error
