"""The cloud-neutral heart of a stack: its agents, their model deployments, memory and the orchestrator."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from agent_runtime.governance.budget_rules import BudgetRule
from core.config.base import NAMESPACE, Name, Strict, did_you_mean, pattern
from core.config.sections import runtime_setting_value


class ModelDeploymentConfig(Strict):
    """A model the agents call, by the name agents and memory refer to it with.

    ``model`` is what the cloud calls it: an Azure OpenAI model (``gpt-4o-mini``) or a Bedrock model or
    inference profile id (``eu.anthropic.claude-3-5-haiku-20241022-v1:0``). ``version``, ``capacity`` and
    ``sku`` describe an Azure OpenAI deployment; each cloud's checks say which fields it needs.
    """

    name: Name
    model: str = Field(min_length=1, description="Model name, e.g. gpt-4o-mini or text-embedding-3-small.")
    version: str | None = Field(
        default=None, min_length=1, description="azure: model version, e.g. 2024-07-18."
    )
    capacity: int | None = Field(
        default=None, ge=1, le=1000, description="azure: throughput in thousands of tokens per minute."
    )
    sku: Literal["GlobalStandard", "DataZoneStandard", "Standard"] = Field(
        default="GlobalStandard", description="azure: the deployment type."
    )
    input_price_per_million: float | None = Field(
        default=None, ge=0, description="List price per million input tokens (dashboard cost, budgets)."
    )
    output_price_per_million: float | None = Field(
        default=None, ge=0, description="List price per million output tokens."
    )


class AgentConfig(Strict):
    """An agent as the runtime runs it; the same shape the runtime's AGENTSTAGE_AGENTS carries."""

    name: Name
    instructions: str = Field(min_length=1)
    description: str = Field(
        default="", max_length=500, description="What the agent is for; the orchestrator's router reads it."
    )
    model: str = Field(min_length=1, description="Name of a deployment in `models`.")
    tools: tuple[str, ...] = ()
    token_budget: int = Field(gt=0, le=10_000_000, description="Tokens one request may spend.")
    max_output_tokens: int | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Cap on one answer of this agent (the runtime's default, 4,096, when omitted); budgets hold "
        "this much output before each call, so a smaller cap admits more calls at once.",
    )


class MemoryConfig(Strict):
    """How agents embed text for long-term memory."""

    embedding_deployment: str = Field(
        min_length=1, description="Name of an embeddings deployment in `models`."
    )
    dimensions: int = Field(default=1536, ge=64, le=4096, description="Embedding dimensions stored.")


class RoutingRuleConfig(Strict):
    """Delegate to ``agents`` when ``match`` (a regular expression) is found in the request."""

    match: str = Field(min_length=1)
    agents: tuple[Name, ...] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _compiles(cls, match: str) -> str:
        try:
            re.compile(match)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return match


class OrchestratorConfig(Strict):
    """The agent that receives every request in stage 2+, validates policy and delegates to the agents.

    Its delegates are all of ``agents``. ``router``: ``model`` lets its model choose from the agents'
    descriptions (falling back to ``rules``); ``rules`` takes the first rule that matches, else every agent.
    ``mode``: ``fan_out`` runs the chosen agents concurrently and ``aggregate``s their answers; ``handoff``
    hands the conversation to the first chosen agent.
    """

    name: Name = "orchestrator"
    instructions: str = Field(min_length=1)
    model: str = Field(min_length=1, description="Name of a deployment in `models`.")
    token_budget: int = Field(gt=0, le=10_000_000)
    router: Literal["model", "rules"] = "model"
    rules: tuple[RoutingRuleConfig, ...] = ()
    mode: Literal["fan_out", "handoff"] = "fan_out"
    aggregate: Literal["model", "concat"] = "model"
    subtask_deadline_seconds: float = Field(
        default=30,
        gt=0,
        lt=60,
        description="How long it waits for its agents; below the runtime's 60 s run deadline, so late "
        "agents are reported instead of failing the whole request.",
    )

    def runtime_definition(self, delegates: Sequence[str]) -> dict[str, Any]:
        """The orchestrator in the runtime's AGENTSTAGE_AGENTS shape (``kind: orchestrator``)."""
        return {
            "name": self.name,
            "kind": "orchestrator",
            "instructions": self.instructions,
            "model": self.model,
            "token_budget": self.token_budget,
            "orchestration": {
                "delegates": list(delegates),
                "router": self.router,
                "rules": [{"match": rule.match, "agents": list(rule.agents)} for rule in self.rules],
                "mode": self.mode,
                "aggregate": self.aggregate,
                "subtask_deadline_seconds": self.subtask_deadline_seconds,
            },
        }


class RuntimeBudgetConfig(BudgetRule):
    """A budget the runtime enforces on every app of the stage (AGENTSTAGE_BUDGETS): the runtime's own rule,
    with the stack file's camelCase keys (``windowSeconds``, ``costUsd``).

    ``scope: application`` counts per calling application (the client id of the app that obtained the
    caller's token): on AWS, whose API Gateway has no token-limit policy, a tokens-per-minute budget of that
    scope is the stage's limit per application that Azure API Management enforces at its gateway."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False)

    @model_validator(mode="after")
    def _limits_something(self) -> RuntimeBudgetConfig:
        # Replaces the runtime's check of the same name, to name the limits as the stack file writes them.
        if self.tokens is None and self.requests is None and self.cost_usd is None:
            raise ValueError("a budget needs at least one of tokens, requests, costUsd")
        return self


# The runtime's own pattern for budget names, in words.
for _metadata in BudgetRule.model_fields["name"].metadata:
    if getattr(_metadata, "pattern", None):
        pattern(_metadata.pattern, "1-64 letters, digits, '.', '_' or '-'")


def check_tools(agents: Sequence[AgentConfig], tool_modules: str | None, *, own_modules: bool) -> None:
    """Every tool an agent lists must be one the runtime will have: a built-in tool, or (where the stack can
    name tool modules: ``own_modules``) one that a module of ``runtimeSettings.tool_modules`` registers.

    Those modules are imported here to learn their tools, and only when an agent names a tool that is not
    built in; when one cannot be imported, such a name cannot be confirmed and is refused with the reason.
    """
    listed = [
        (f"{NAMESPACE}:agents[{index}].tools[{position}]", name)
        for index, agent in enumerate(agents)
        for position, name in enumerate(agent.tools)
    ]
    if not listed:
        return  # the runtime's tool layer loads only when an agent names a tool
    from agent_runtime.tools import default_registry
    from agent_runtime.tools.builtins import builtin_tools

    builtins = sorted(tool.name for tool in builtin_tools())
    unknown = [(key, name) for key, name in listed if name not in builtins]
    if not unknown:
        return
    if not own_modules:
        key, name = unknown[0]
        raise ValueError(
            f"{key}: '{name}' is not a tool of the runtime{did_you_mean(name, builtins)} (built-in tools: "
            f"{', '.join(builtins)})"
        )
    modules: list[str] = runtime_setting_value("tool_modules", tool_modules) if tool_modules else []
    failures = [f"{module} ({error})" for module in modules if (error := _import_error(module))]
    # What the runtime's registry holds once the modules are imported (their @tool decorators ran).
    known = sorted({tool.name for tool in default_registry} | set(builtins)) if modules else builtins
    for key, name in unknown:
        if name in known:
            continue
        if failures:
            raise ValueError(
                f"{key}: '{name}' is not a built-in tool ({', '.join(builtins)}), and the tools of "
                f"{NAMESPACE}:runtimeSettings.tool_modules cannot be checked here: cannot import "
                f"{'; '.join(failures)}; install those modules where agentstage runs so the plan can check "
                "the names"
            )
        where = (
            f"with those of {NAMESPACE}:runtimeSettings.tool_modules ({', '.join(modules)})"
            if modules
            else f"custom tools need their modules in {NAMESPACE}:runtimeSettings.tool_modules"
        )
        raise ValueError(
            f"{key}: '{name}' is not a tool of the runtime{did_you_mean(name, known)} (tools: "
            f"{', '.join(known)}; {where})"
        )


def _import_error(module: str) -> str | None:
    """Import ``module`` (its ``@tool`` decorators register its tools); what went wrong, if anything."""
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - a module failing to import for any reason cannot tell its tools
        return f"{type(error).__name__}: {error}"
    return None
