"""StackConfig: valid stack files parse; every mistake names the file, the key and what is allowed."""

from __future__ import annotations

import json

import pytest

from core.config import StackConfig, StackConfigError, parse_stack_config
from core.stacks import PROJECT_DIR, available_stacks, read_stack_config, stack_file

SOURCE = "stacks/Pulumi.test.yaml"


def valid_config(**overrides: object) -> dict[str, str]:
    """A minimal valid config as the Pulumi engine passes it (structured values JSON-encoded)."""
    config: dict[str, object] = {
        "blueprint": "pilot",
        "cloud": "azure",
        "location": "swedencentral",
        "namePrefix": "ags",
        "environment": "dev",
        "models": [
            {"name": "chat", "model": "gpt-4o-mini", "version": "2024-07-18", "capacity": 10},
            {"name": "embeddings", "model": "text-embedding-3-small", "version": "1", "capacity": 10},
        ],
        "memory": {"embeddingDeployment": "embeddings"},
        "agents": [{"name": "assistant", "instructions": "Help.", "model": "chat", "tokenBudget": 1000}],
    }
    config.update(overrides)
    return {
        f"agentstage:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in config.items()
    }


def error_for(raw: dict[str, str]) -> str:
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(raw, SOURCE)
    return str(caught.value)


def test_valid_config_parses_with_documented_defaults() -> None:
    config = parse_stack_config(valid_config(), SOURCE)
    assert config.agents[0].token_budget == 1000
    assert config.log_retention_days == 30
    assert config.functions.instance_memory_mb == 2048
    assert config.vector_search_enabled is False
    assert config.api_audience == "api://ags-dev"


def test_scalars_arrive_as_strings_and_are_converted() -> None:
    config = parse_stack_config(valid_config(logRetentionDays="90"), SOURCE)
    assert config.log_retention_days == 90


def test_keys_of_other_namespaces_are_left_to_their_providers() -> None:
    raw = {**valid_config(), "azure-native:location": "westeurope"}
    assert parse_stack_config(raw, SOURCE).location == "swedencentral"


def test_unknown_top_level_key_names_file_key_and_allowed_keys() -> None:
    raw = {**valid_config(), "agentstage:agnets": "[]"}
    message = error_for(raw)
    assert message.startswith(f"{SOURCE}: unknown key 'agentstage:agnets'")
    assert "agentstage:agents" in message and "agentstage:logRetentionDays" in message


def test_unknown_nested_key_names_its_path_and_siblings() -> None:
    agent = {"name": "assistant", "instructions": "Help.", "model": "chat", "tokenBudget": 1, "toolz": []}
    message = error_for(valid_config(agents=[agent]))
    assert f"{SOURCE}: unknown key 'agentstage:agents[0].toolz'" in message
    assert "instructions, maxOutputTokens, model, name, tokenBudget, tools" in message


def test_snake_case_keys_are_typos_too() -> None:
    message = error_for({**valid_config(), "agentstage:log_retention_days": "30"})
    assert "unknown key 'agentstage:log_retention_days'" in message


def test_unknown_blueprint_lists_allowed_values() -> None:
    message = error_for(valid_config(blueprint="pilott"))
    assert message == f"{SOURCE}: agentstage:blueprint: Input should be 'pilot', 'foundation' or 'enterprise' (got 'pilott')"


def test_wrong_type_names_nested_key_and_given_value() -> None:
    agent = {"name": "assistant", "instructions": "Help.", "model": "chat", "tokenBudget": "lots"}
    message = error_for(valid_config(agents=[agent]))
    assert f"{SOURCE}: agentstage:agents[0].tokenBudget: Input should be a valid integer" in message
    assert "(got 'lots')" in message
    assert "at least 1 item" not in message


def test_out_of_range_value_states_the_limit() -> None:
    message = error_for(valid_config(logRetentionDays="7"))
    assert message == f"{SOURCE}: agentstage:logRetentionDays: Input should be greater than or equal to 30 (got '7')"


def test_missing_required_key() -> None:
    raw = valid_config()
    del raw["agentstage:cloud"]
    assert error_for(raw) == f"{SOURCE}: missing required key 'agentstage:cloud'"


def test_agent_must_use_a_declared_deployment() -> None:
    agent = {"name": "assistant", "instructions": "Help.", "model": "gpt-5", "tokenBudget": 1}
    message = error_for(valid_config(agents=[agent]))
    assert "agentstage:agents[0].model: 'gpt-5' is not a deployment in agentstage:models" in message
    assert "(deployments: chat, embeddings)" in message


def test_duplicate_agent_names_are_rejected() -> None:
    agent = {"name": "assistant", "instructions": "Help.", "model": "chat", "tokenBudget": 1}
    assert "agents: names must be unique; repeated: assistant" in error_for(valid_config(agents=[agent, agent]))


def test_invalid_json_structure_is_reported_not_crashed() -> None:
    message = error_for({**valid_config(), "agentstage:agents": "[{not json"})
    assert message.startswith(f"{SOURCE}: agentstage:agents:")


@pytest.mark.parametrize("stack", available_stacks())
def test_every_shipped_stack_file_is_valid(stack: str) -> None:
    path = stack_file(stack)
    raw, secret_keys = read_stack_config(path)
    config = parse_stack_config(raw, str(path.relative_to(PROJECT_DIR)))
    assert isinstance(config, StackConfig)
    assert secret_keys == [], "stack files carry no secrets: identities replace keys"


def test_every_built_blueprint_has_its_function_and_no_other() -> None:
    from blueprints.registry import FUNCTIONS
    from core.config.stack import BUILT

    assert set(FUNCTIONS) == set(BUILT)
