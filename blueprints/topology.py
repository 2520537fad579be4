"""The cloud-neutral part of every blueprint: which agents run, a task queue per agent, who may send to
whom, and the runtime settings that do not depend on the cloud.

Each cloud renders this topology with its own components (Function Apps or Lambdas, Service Bus or SQS,
Entra ID or IAM) and adds its own settings in one function per cloud; nothing here imports a cloud SDK,
so a plain Kubernetes stack plans without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from core.config import AgentConfig, OrchestratorConfig, StackConfig


def task_queue(agent: str) -> str:
    """The queue an agent's worker receives its tasks from."""
    return f"tasks-{agent}"


def agents_json(agents: Iterable[BaseModel | dict[str, object]]) -> str:
    """Agent definitions in the runtime's AGENTSTAGE_AGENTS shape (snake_case field names)."""
    return json.dumps(
        [
            agent if isinstance(agent, dict) else agent.model_dump(mode="json", exclude_none=True)
            for agent in agents
        ],
        separators=(",", ":"),
    )


def model_prices_json(config: StackConfig, called: Mapping[str, str] | None = None) -> str:
    """The stack file's model prices in the runtime's AGENTSTAGE_MODEL_PRICES shape (cost budgets), keyed
    by what the runtime calls each model (``called``: deployment name -> model id; the name by default)."""
    called = called or {}
    return json.dumps(
        {
            called.get(model.name, model.name): {
                "input": model.input_price_per_million or 0.0,
                "output": model.output_price_per_million or 0.0,
            }
            for model in config.models
            if model.input_price_per_million is not None or model.output_price_per_million is not None
        },
        separators=(",", ":"),
    )


def runtime_budgets(config: StackConfig) -> dict[str, str]:
    """AGENTSTAGE_BUDGETS from the stack's runtime budgets (nothing when it declares none)."""
    if not config.runtime_budgets:
        return {}
    rules = [rule.model_dump(mode="json", exclude_none=True) for rule in config.runtime_budgets]
    return {"budgets": json.dumps(rules, separators=(",", ":"))}


def stack_tags(config: StackConfig) -> dict[str, str]:
    """The stack's tags plus the ones agentstage always sets (user tags cannot override them)."""
    return {
        **config.tags,
        "agentstage-blueprint": config.blueprint,
        "agentstage-environment": config.environment,
        "managed-by": "pulumi",
    }


@dataclass(frozen=True)
class Topology:
    """The agents of a stack and how work flows between them.

    The pilot runs every agent in one runtime that answers its callers directly: no queues. Later
    stages run each agent in a runtime of its own with a task queue it alone receives from (and may
    re-queue to: a deferred message is sent again); only the orchestrator, where there is one, may send
    to the other agents' queues.
    """

    config: StackConfig
    called: Mapping[str, str] = field(default_factory=dict)
    """What the runtime calls each model, by the name the stack file gives it: Azure OpenAI is called by
    deployment name (the default, nothing to map), Bedrock by model id."""

    @property
    def orchestrator(self) -> OrchestratorConfig | None:
        return self.config.orchestrator

    @property
    def definitions(self) -> dict[str, OrchestratorConfig | AgentConfig]:
        """Every agent that runs, the orchestrator first."""
        agents: dict[str, OrchestratorConfig | AgentConfig] = {}
        if self.orchestrator is not None:
            agents[self.orchestrator.name] = self.orchestrator
        agents.update({agent.name: agent for agent in self.config.agents})
        return agents

    @property
    def queued(self) -> bool:
        """Whether each agent has a runtime and a task queue of its own (every stage after the pilot)."""
        return self.config.blueprint != "pilot"

    def queues(self) -> list[str]:
        return [task_queue(name) for name in self.definitions] if self.queued else []

    def senders(self) -> Iterator[tuple[str, str]]:
        """(identity, queue) pairs allowed to send: each agent to its own queue, the orchestrator to all."""
        if not self.queued:
            return
        for name in self.definitions:
            yield name, task_queue(name)
        if self.orchestrator is not None:
            for agent in self.config.agents:
                yield self.orchestrator.name, task_queue(agent.name)

    def agents_json(self, name: str) -> str:
        """AGENTSTAGE_AGENTS of runtime ``name``. In the pilot one runtime runs every agent. Later, each
        agent's runtime runs it alone, and the orchestrator's runs itself as ``kind:
        orchestrator`` delegating to every agent, whose definitions it needs to route (their descriptions)
        and to validate its routing; it runs none of them (``agent_queues``)."""
        agents = self.config.agents
        if not self.queued:
            return agents_json(self._calling(agent) for agent in agents)
        if self.orchestrator is None or name != self.orchestrator.name:
            return agents_json([self._calling(self.definitions[name])])
        orchestrator = self.orchestrator.runtime_definition([agent.name for agent in agents])
        return agents_json([self._calling(orchestrator), *(self._calling(agent) for agent in agents)])

    def _calling(self, agent: BaseModel | dict[str, Any]) -> dict[str, Any]:
        """The agent's runtime definition, naming its model as the runtime calls it."""
        definition = agent if isinstance(agent, dict) else agent.model_dump(mode="json", exclude_none=True)
        return {**definition, "model": self.called.get(definition["model"], definition["model"])}

    def agent_settings(self, name: str) -> dict[str, str]:
        """The runtime settings of agent ``name`` that no cloud changes: what it runs and where work goes."""
        config = self.config
        settings = {
            "environment": config.environment,
            "agents": self.agents_json(name),
            "embedding_model": self.called.get(
                config.memory.embedding_deployment, config.memory.embedding_deployment
            ),
            "embedding_dimensions": str(config.memory.dimensions),
            "model_prices": model_prices_json(config, self.called),
            **runtime_budgets(config),
        }
        if self.queued:
            settings["task_queue"] = task_queue(name)
        else:  # no queue, no worker: the task endpoints say so instead of accepting work nothing runs
            settings["tasks_enabled"] = "false"
        if self.orchestrator is not None and name == self.orchestrator.name:
            settings["agent_queues"] = json.dumps(
                {agent.name: task_queue(agent.name) for agent in config.agents}
            )
        return settings
