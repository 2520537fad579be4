"""Agent definitions come from configuration and fail loudly, naming the agent and the key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from agent_runtime.agents import AgentCatalog, parse_agents
from agent_runtime.api import create_app
from agent_runtime.errors import ConfigurationError, UnknownAgent
from agent_runtime.settings import Settings
from agent_runtime.tools import Tool, ToolContext, ToolRegistry, default_registry
from agent_runtime.tools.builtins import builtin_tools

SETTINGS = Settings(default_model="m-default", default_token_budget=123, max_steps=4)


def parse(definitions: Any) -> list[Any]:
    return parse_agents(json.dumps(definitions), SETTINGS, default_registry)


def test_defaults_fill_what_a_definition_leaves_out() -> None:
    [agent] = parse([{"name": "helper", "tools": ["calculator"]}])
    assert (agent.model, agent.token_budget, agent.max_steps) == ("m-default", 123, 4)
    assert agent.tools == ("calculator",)
    assert (agent.memory.history_window, agent.memory.persist, agent.memory.recall_top_k) == (20, True, 0)


def test_the_stack_file_shape_is_accepted() -> None:
    [agent] = parse(
        [{"name": "support", "instructions": "Help.", "model": "gpt-4o", "tools": [], "token_budget": 9000}]
    )
    assert (agent.instructions, agent.model, agent.token_budget) == ("Help.", "gpt-4o", 9000)


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ([{"name": "a", "temperature": 0.2}], "agent 'a': unknown key 'temperature'"),
        ([{"name": "a", "memory": {"window": 3}}], "agent 'a': unknown key 'memory.window'"),
        (
            [{"name": "a", "tools": ["shell"]}],
            "agent 'a': unknown tool 'shell' (registered: calculator, http_get",
        ),
        ([{"name": "a", "token_budget": 0}], "agent 'a': 'token_budget': Input should be greater than 0"),
        ([{"instructions": "x"}], "agent #0: 'name': Field required"),
        ([{"name": "a b"}], "agent 'a b': 'name': String should match pattern"),
        ([{"name": "a"}, {"name": "a"}], "agent 'a' is defined twice"),
        (["a"], "agent #0 must be a JSON object"),
        ({"name": "a"}, "AGENTSTAGE_AGENTS must be a JSON list of agent definitions"),
    ],
)
def test_mistakes_name_the_agent_and_the_key(definitions: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse(definitions)
    assert str(raised.value).startswith(message)


def test_invalid_json_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="AGENTSTAGE_AGENTS is not valid JSON"):
        parse_agents("[{", SETTINGS, default_registry)


def test_create_app_fails_fast_on_bad_configuration() -> None:
    with pytest.raises(ConfigurationError, match="unknown tool 'nope'"):
        create_app(Settings(agents='[{"name": "a", "tools": ["nope"]}]'))
    with pytest.raises(ConfigurationError, match="AGENTSTAGE_API_KEYS entry #1 must be"):
        create_app(Settings(api_keys='{"k": {"roles": ["x"]}}'))
    with pytest.raises(ConfigurationError, match="cannot import 'no_such_tools_module'"):
        create_app(Settings(tool_modules=["no_such_tools_module"]))


def test_the_catalog_finds_agents_by_name() -> None:
    catalog = AgentCatalog(parse([{"name": "one"}, {"name": "two"}]))
    assert [agent.name for agent in catalog] == ["one", "two"] and len(catalog) == 2
    assert catalog.get("two").name == "two"
    with pytest.raises(UnknownAgent, match="no agent named 'three'"):
        catalog.get("three")


class LookupArgs(BaseModel):
    key: str


async def lookup(args: LookupArgs, ctx: ToolContext) -> dict[str, str]:
    """Look a key up."""
    return {"key": args.key}


def test_custom_tools_register_by_decorator_or_explicitly() -> None:
    registry = ToolRegistry(builtin_tools())
    registry.tool(roles={"staff"})(lookup)
    tool = registry.get("lookup")
    assert tool is not None
    assert (tool.description, tool.args, tool.roles) == ("Look a key up.", LookupArgs, frozenset({"staff"}))
    registry.register(Tool(name="lookup2", description="Another.", args=LookupArgs, handler=lookup))
    assert [t.name for t in registry][-2:] == ["lookup", "lookup2"]
    with pytest.raises(ValueError, match="a tool named 'lookup' is already registered"):
        registry.tool()(lookup)
    with pytest.raises(ValueError, match="must be 1-64 letters"):
        Tool(name="no spaces", description="", args=LookupArgs, handler=lookup)


def test_a_handler_without_an_argument_model_is_refused() -> None:
    async def bare(args: dict, ctx: ToolContext) -> str:  # type: ignore[type-arg]
        return ""

    with pytest.raises(TypeError, match="must take a pydantic model as its first parameter"):
        ToolRegistry().tool()(bare)


def test_jwt_mode_requires_its_settings() -> None:
    with pytest.raises(
        ValueError, match="auth_mode 'jwt' needs AGENTSTAGE_JWT_ISSUER, AGENTSTAGE_JWT_AUDIENCE"
    ):
        Settings(auth_mode="jwt")


ORCHESTRATED = [
    {"name": "research", "description": "Finds facts."},
    {"name": "writer", "description": "Writes prose."},
]


def orchestrator(**orchestration: Any) -> dict[str, Any]:
    return {
        "name": "lead",
        "kind": "orchestrator",
        "orchestration": {"delegates": ["research"]} | orchestration,
    }


def test_an_orchestrator_definition_is_validated_with_its_defaults() -> None:
    *_, lead = parse(
        [
            *ORCHESTRATED,
            orchestrator(
                rules=[{"match": "(?i)write", "agents": ["writer"]}], delegates=["research", "writer"]
            ),
        ]
    )
    plan = lead.orchestration
    assert lead.kind == "orchestrator" and plan is not None
    assert (plan.router, plan.mode, plan.aggregate, plan.subtask_deadline_seconds) == (
        "rules",
        "fan_out",
        "concat",
        30.0,
    )
    assert plan.fallback_agents == ("research", "writer"), "no default_agents: every delegate"
    assert parse(ORCHESTRATED)[0].kind == "agent"


@pytest.mark.parametrize(
    ("lead", "message"),
    [
        (
            orchestrator(delegates=["researcher"]),
            "agent 'lead': 'orchestration.delegates.0': unknown agent 'researcher'",
        ),
        (
            orchestrator(rules=[{"match": "x", "agents": ["writer"]}]),
            "agent 'lead': 'orchestration.rules.0.agents.0': 'writer' is not one of orchestration.delegates",
        ),
        (
            orchestrator(default_agents=["nobody"]),
            "agent 'lead': 'orchestration.default_agents.0': unknown agent 'nobody'",
        ),
        (
            orchestrator(delegates=["lead"]),
            "agent 'lead': 'orchestration.delegates.0': 'lead' is an orchestrator",
        ),
        (
            orchestrator(rules=[{"match": "(", "agents": ["research"]}]),
            "agent 'lead': 'orchestration.rules.0.match': Value error, not a regular expression",
        ),
        (
            orchestrator(router="llm"),
            "agent 'lead': 'orchestration.router': Input should be 'rules' or 'model'",
        ),
        (
            orchestrator(delegates=[]),
            "agent 'lead': 'orchestration.delegates': Tuple should have at least 1 item",
        ),
        (orchestrator(subtask_deadline_seconds=0), "agent 'lead': 'orchestration.subtask_deadline_seconds'"),
        (orchestrator(fan_out=True), "agent 'lead': unknown key 'orchestration.fan_out'"),
        (
            orchestrator(subtask_deadline_seconds=60),
            (
                "agent 'lead': 'orchestration.subtask_deadline_seconds' (60) must be less than "
                "AGENTSTAGE_DEADLINE_SECONDS (60)"
            ),
        ),
        (
            {"name": "lead", "kind": "orchestrator"},
            "agent 'lead': an orchestrator needs an 'orchestration' section",
        ),
        (
            {"name": "lead", "orchestration": {"delegates": ["research"]}},
            "agent 'lead': 'orchestration' is only for agents of kind 'orchestrator'",
        ),
        (
            orchestrator() | {"tools": ["calculator"]},
            "agent 'lead': an orchestrator delegates and runs no tools",
        ),
        (
            {"name": "lead", "kind": "router"},
            "agent 'lead': 'kind': Input should be 'agent' or 'orchestrator'",
        ),
    ],
)
def test_orchestration_mistakes_name_the_agent_and_the_key(lead: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse([*ORCHESTRATED, lead])
    assert str(raised.value).startswith(message)
