"""The runtime's settings, read from its environment and from a settings directory.

:class:`Settings` is :class:`~agent_runtime.settings_contract.SettingsContract` read by pydantic-settings:
each field from ``AGENTSTAGE_<FIELD NAME IN CAPITALS>`` or from a file of that name in
``AGENTSTAGE_SETTINGS_DIR``. The contract lives apart so that the infrastructure side (``agentstage plan``,
the components, the policy rules) checks names and values against it without loading the reader.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_runtime.errors import ConfigurationError
from agent_runtime.settings_contract import ENV_PREFIX, SETTINGS_DIR_VARIABLE, SettingsContract, env_name


class Settings(SettingsContract, BaseSettings):
    """Runtime settings; each field is read from ``AGENTSTAGE_<FIELD NAME IN CAPITALS>``.

    Values are text, decoded by each field's own validators (``enable_decoding=False``): a list of names may
    be comma-separated, which pydantic-settings' JSON decoding of list fields would refuse.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        secrets_dir=os.environ.get(SETTINGS_DIR_VARIABLE) or None,
        enable_decoding=False,
        defer_build=False,
    )


class GatewayAuthorizerSettings(BaseSettings):
    """What the API gateway's Lambda authorizer reads: the JWT fields of :class:`Settings` (the same
    variables, defaults and validation) and ``gateway_usage_plans``. Its function is configured with these
    alone (``env_for(values, cloud=False)``): it runs no agent, so it needs none of the agent settings."""

    model_config = Settings.model_config

    jwt_issuer: str | None = Settings.model_fields["jwt_issuer"]
    jwt_audience: str | None = Settings.model_fields["jwt_audience"]
    jwt_jwks_url: str | None = Settings.model_fields["jwt_jwks_url"]
    jwt_algorithms: list[str] = Settings.model_fields["jwt_algorithms"]
    jwt_roles_claim: str = Settings.model_fields["jwt_roles_claim"]
    jwt_tenant_claim: str = Settings.model_fields["jwt_tenant_claim"]
    jwks_cache_seconds: float = Settings.model_fields["jwks_cache_seconds"]
    gateway_usage_plans: dict[str, str] | None = Settings.model_fields["gateway_usage_plans"]

    @model_validator(mode="after")
    def _complete(self) -> GatewayAuthorizerSettings:
        """Fail at cold start, not on the first request, without what tokens are verified with."""
        required = ("jwt_issuer", "jwt_audience", "jwt_jwks_url")
        missing = [env_name(name) for name in required if not getattr(self, name)]
        if missing:
            raise ValueError(f"the gateway authorizer needs {', '.join(missing)}")
        return self


JSON_FORMATS: dict[str, tuple[type, str]] = {
    "agents": (list, '[{"name": "assistant", "instructions": "Be brief.", "tools": ["calculator"]}]'),
    "budgets": (
        list,
        '[{"name": "daily", "scope": "tenant", "match": "*", "window_seconds": 86400, "tokens": 1000000}]',
    ),
    "model_prices": (dict, '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}'),
    "agent_queues": (dict, '{"research": "tasks-research"}'),
    "api_keys": (dict, '{"<key>": {"caller": "alice", "roles": ["user"], "tenant": "t1"}}'),
}
"""The structured settings: the JSON type each must be, and an example of it."""


def check_json_settings(settings: Settings) -> None:
    """:class:`ConfigurationError` naming the variable, the JSON type it must be and an example, unless every
    structured setting is JSON of its type; what is inside is checked by the code that uses it."""
    for field, (kind, example) in JSON_FORMATS.items():
        value = getattr(settings, field)
        if value is None:
            continue
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        expected = "a JSON list" if kind is list else "a JSON object"
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigurationError(
                f"{env_name(field)} is not valid JSON ({error.msg} at position {error.pos}): it must be "
                f"{expected}, e.g. {example}"
            ) from None
        if not isinstance(parsed, kind):
            raise ConfigurationError(
                f"{env_name(field)} must be {expected}, not {_json_type(parsed)}: e.g. {example}"
            )


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )
