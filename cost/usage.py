"""A usage profile: how much a stage is used, to turn requests and tokens into monthly usage cost.

Written by the user (``agentstage cost --usage FILE``), camelCase like the stack files::

    agents:
      "*":                          # every agent not listed by name
        requestsPerDay: 500
        inputTokensPerRequest: 2000
        outputTokensPerRequest: 400
      research:                     # overrides "*" field by field
        requestsPerDay: 2000
    storage:
      stateGb: 2
      vectors: 100000
    logs:
      gbPerDay: 0.5
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from core.config import describe_validation_error
from core.errors import AgentstageError

DEFAULT_AGENT = "*"


class UsageError(AgentstageError):
    """A usage profile that cannot be used; names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, populate_by_name=False)


class AgentUsage(_Strict):
    """One agent's traffic; a field left out takes the ``"*"`` entry's value, then 0."""

    requests_per_day: float | None = Field(
        default=None, ge=0, description="Requests the agent answers a day."
    )
    input_tokens_per_request: float | None = Field(
        default=None, ge=0, description="Model input tokens per request."
    )
    output_tokens_per_request: float | None = Field(
        default=None, ge=0, description="Model output tokens per request."
    )
    embedding_tokens_per_request: float | None = Field(
        default=None, ge=0, description="Tokens embedded per request (memory writes and searches)."
    )
    seconds_per_request: float | None = Field(
        default=None,
        ge=0,
        description="Time the agent's compute is busy per request, waiting on the model included.",
    )
    state_request_units_per_request: float | None = Field(
        default=None, ge=0, description="Cosmos DB request units per request (history, ledger, memory)."
    )
    messages_per_request: float | None = Field(
        default=None, ge=0, description="Bus operations per request (send, receive, complete)."
    )
    vault_operations_per_request: float | None = Field(
        default=None, ge=0, description="Key Vault reads per request."
    )

    def over(self, default: AgentUsage | None) -> AgentUsage:
        """This entry with its missing fields taken from ``default``."""
        if default is None:
            return self
        merged = {name: getattr(self, name) for name in type(self).model_fields}
        for name, value in merged.items():
            if value is None:
                merged[name] = getattr(default, name)
        return AgentUsage.model_validate({type(self).model_fields[n].alias: v for n, v in merged.items()})

    def value(self, field: str) -> float:
        return getattr(self, field) or 0.0


class StorageUsage(_Strict):
    state_gb: float = Field(
        default=0, ge=0, description="Conversations, tasks and documents in the state store."
    )
    vectors: float = Field(
        default=0, ge=0, description="Memory vectors stored (stack's memory.dimensions each)."
    )
    blob_gb_per_account: float = Field(default=0, ge=0, description="Blobs in each storage account.")


class LogUsage(_Strict):
    gb_per_day: float = Field(
        default=0, ge=0, description="Logs and traces ingested into the workspace a day."
    )


class UsageProfile(_Strict):
    agents: dict[str, AgentUsage] = Field(default_factory=dict)
    storage: StorageUsage = Field(default_factory=StorageUsage)
    logs: LogUsage = Field(default_factory=LogUsage)

    def agent(self, name: str) -> AgentUsage | None:
        """The agent's usage (its own entry over ``"*"``), or ``None`` when the profile says nothing of it."""
        default = self.agents.get(DEFAULT_AGENT)
        own = self.agents.get(name)
        if own is None:
            return default
        return own.over(default)

    def check_agents(self, known: list[str], source: str) -> None:
        """Every agent the profile names exists in the stack (a typo would silently price nothing)."""
        unknown = sorted(set(self.agents) - set(known) - {DEFAULT_AGENT})
        if unknown:
            raise UsageError(
                f"{source}: agents.{unknown[0]}: no such agent in the stack (agents: {', '.join(known)}; "
                f'"{DEFAULT_AGENT}" sets every agent not listed)'
            )


def load_usage(path: Path) -> UsageProfile:
    """The profile in ``path``, or a :class:`UsageError` naming the file and the key that is wrong."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"--usage {path}: cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"--usage {path}: not YAML: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"--usage {path}: expected a mapping with agents, storage and logs")
    try:
        return UsageProfile.model_validate(document)
    except ValidationError as error:
        raise UsageError(describe_validation_error(error, str(path), UsageProfile)) from None
