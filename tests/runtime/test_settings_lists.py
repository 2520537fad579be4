"""List settings from the environment: names comma-separated or JSON, patterns JSON only; structured
settings JSON of their shape; every mistake names its variable and what is allowed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_runtime.api import create_app
from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import JSON_FORMATS, Settings, check_json_settings
from agent_runtime.startup import describe_settings_error


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("AGENTSTAGE_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mytools", ["mytools"]),
        (" mytools , acme.tools ,", ["mytools", "acme.tools"]),
        ('["mytools", "acme.tools"]', ["mytools", "acme.tools"]),
        ("", []),
    ],
)
@pytest.mark.parametrize("field", ["tool_modules", "api_key_roles", "http_allowed_hosts", "jwt_algorithms"])
def test_a_list_of_names_is_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv(f"AGENTSTAGE_{field.upper()}", value)
    assert getattr(Settings(), field) == expected


@pytest.mark.parametrize("field", ["sensitive_patterns", "injection_patterns"])
def test_a_list_of_patterns_is_json_because_patterns_hold_commas(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    variable = f"AGENTSTAGE_{field.upper()}"
    monkeypatch.setenv(variable, r'["ACME-\\d{1,8}"]')
    assert getattr(Settings(), field) == [r"ACME-\d{1,8}"]
    monkeypatch.setenv(variable, r"ACME-\d{1,8}")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert describe_settings_error(raised.value).startswith(
        f"{variable}: must be a JSON list of regular expressions"
    )


def test_values_given_in_code_are_lists_as_before() -> None:
    assert Settings(tool_modules=["a", "b"], api_key_roles=("user",)).tool_modules == ["a", "b"]


def test_a_settings_error_names_each_variable_and_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSTAGE_LLM_PROVIDER", "openia")
    monkeypatch.setenv("AGENTSTAGE_TOOL_MODULES", '["a", 1]')
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert describe_settings_error(raised.value) == (
        "AGENTSTAGE_LLM_PROVIDER: Input should be 'openai', 'azure_openai', 'anthropic' or 'bedrock' "
        "(got 'openia'); AGENTSTAGE_TOOL_MODULES[1]: Input should be a valid string (got 1)"
    )
    monkeypatch.delenv("AGENTSTAGE_LLM_PROVIDER")
    monkeypatch.delenv("AGENTSTAGE_TOOL_MODULES")
    with pytest.raises(ValidationError) as raised:
        Settings(api_key=12345)
    assert describe_settings_error(raised.value) == "AGENTSTAGE_API_KEY: Input should be a valid string"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "agents",
            '{"name": "a"}',
            'AGENTSTAGE_AGENTS must be a JSON list, not an object: e.g. [{"name": "assistant"',
        ),
        (
            "agent_queues",
            "research",
            "AGENTSTAGE_AGENT_QUEUES is not valid JSON (Expecting value at position 0)",
        ),
        ("agent_queues", '["tasks-research"]', "AGENTSTAGE_AGENT_QUEUES must be a JSON object, not a list"),
        (
            "model_prices",
            "1",
            'AGENTSTAGE_MODEL_PRICES must be a JSON object, not a number: e.g. {"gpt-4o-mini"',
        ),
        ("budgets", "null", "AGENTSTAGE_BUDGETS must be a JSON list, not null: e.g. [{"),
        ("api_keys", "[]", 'AGENTSTAGE_API_KEYS must be a JSON object, not a list: e.g. {"<key>": {"caller"'),
    ],
)
def test_a_structured_setting_of_the_wrong_shape_shows_an_example(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_json_settings(Settings(**{field: value}))
    assert raised.value.message.startswith(message), raised.value.message


def test_the_defaults_are_well_formed() -> None:
    check_json_settings(Settings())


def test_every_example_shown_in_an_error_is_accepted_by_the_runtime(tmp_path: Path) -> None:
    examples = {field: example for field, (_, example) in JSON_FORMATS.items()}
    agents = [*json.loads(examples.pop("agents")), {"name": "research"}]  # agent_queues' example names it
    settings = Settings(
        agents=json.dumps(agents), llm_auth="none", sqlite_path=str(tmp_path / "state.db"), **examples
    )
    check_json_settings(settings)
    create_app(settings)  # parses every structured setting as the runtime does
