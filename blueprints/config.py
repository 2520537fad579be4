"""The stack configuration: everything a stack file may say, validated before anything is built.

Stack files (``stacks/Pulumi.<stack>.yaml``) use Pulumi's ``agentstage:`` namespace with camelCase keys.
Unknown keys are errors - a typo must never fall back to a default silently - and every error names
the stack file, the key as written there, and what is allowed.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

NAMESPACE = "agentstage"

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]


class _Strict(BaseModel):
    """camelCase keys as written in the stack file; unknown keys rejected."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, populate_by_name=False)


class ModelDeploymentConfig(_Strict):
    """A model deployment on the managed LLM endpoint (Azure OpenAI deployment, Bedrock model, ...)."""

    name: Name
    model: str = Field(min_length=1, description="Model name, e.g. gpt-4o-mini or text-embedding-3-small.")
    version: str = Field(min_length=1, description="Model version, e.g. 2024-07-18.")
    capacity: int = Field(ge=1, le=1000, description="Throughput in thousands of tokens per minute.")
    sku: Literal["GlobalStandard", "DataZoneStandard", "Standard"] = "GlobalStandard"
    input_price_per_million: float | None = Field(
        default=None, ge=0, description="List price per million input tokens (dashboard cost, budgets)."
    )
    output_price_per_million: float | None = Field(
        default=None, ge=0, description="List price per million output tokens."
    )


class AgentConfig(_Strict):
    """An agent as the runtime runs it; the same shape the runtime's AGENTSTAGE_AGENTS carries."""

    name: Name
    instructions: str = Field(min_length=1)
    model: str = Field(min_length=1, description="Name of a deployment in `models`.")
    tools: tuple[str, ...] = ()
    token_budget: int = Field(gt=0, le=10_000_000, description="Tokens one request may spend.")


class MemoryConfig(_Strict):
    """How agents embed text for long-term memory."""

    embedding_deployment: str = Field(min_length=1, description="Name of an embeddings deployment in `models`.")
    dimensions: int = Field(default=1536, ge=64, le=4096, description="Embedding dimensions stored.")


class VectorSearchConfig(_Strict):
    """Optional managed vector search (Azure AI Search) for agent memory and retrieval."""

    enabled: bool = True
    sku: Literal["basic", "standard", "standard2", "standard3"] = "basic"
    replicas: int = Field(default=1, ge=1, le=12)
    partitions: Literal[1, 2, 3, 4, 6, 12] = 1


class FunctionsConfig(_Strict):
    """Sizing of the serverless agents (Azure Functions Flex Consumption)."""

    instance_memory_mb: Literal[512, 2048, 4096] = 2048
    maximum_instance_count: int = Field(default=100, ge=1, le=1000)
    always_ready: int = Field(default=0, ge=0, le=20, description="Instances kept warm for HTTP triggers.")
    zone_redundant: bool = Field(default=False, description="Spread instances over availability zones.")


class ContentFilterConfig(_Strict):
    """The content filter (Azure OpenAI RAI policy) attached to every model deployment."""

    severity_threshold: Literal["Low", "Medium", "High"] = "Medium"
    block_prompt_attacks: bool = True


class ApiConfig(_Strict):
    """How callers authenticate to the deployed agents (Entra ID JWT bearer tokens)."""

    audience: str | None = Field(
        default=None, description="Expected token audience (the API's app ID URI); defaults to api://<prefix>-<env>."
    )


class OrchestratorConfig(_Strict):
    """The agent that receives every request in stage 2+, validates policy and delegates to the agents."""

    name: Name = "orchestrator"
    instructions: str = Field(min_length=1)
    model: str = Field(min_length=1, description="Name of a deployment in `models`.")
    token_budget: int = Field(gt=0, le=10_000_000)


class GatewayConfig(_Strict):
    """The API gateway (Azure API Management) in front of the agents and the models."""

    sku: Literal["Consumption", "BasicV2", "StandardV2"] = "BasicV2"
    capacity: int = Field(default=1, ge=1, le=10, description="Scale units (ignored by Consumption).")
    publisher_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Receives APIM notifications.")
    publisher_name: str = Field(default="agentstage", min_length=1)
    tokens_per_minute: int = Field(default=20_000, ge=100, description="Token limit per calling application.")
    caller_application_ids: tuple[str, ...] = Field(
        default=(), description="Client ids of the applications (front ends) whose Entra ID tokens it accepts."
    )


class MessagingConfig(_Strict):
    """The message bus (Azure Service Bus) carrying tasks between the orchestrator and the agents."""

    sku: Literal["Standard", "Premium"] = "Standard"
    max_delivery_count: int = Field(default=5, ge=1, le=100, description="Deliveries before dead-lettering.")


# Keys that only mean something from a given stage on: set on an earlier stage they would be ignored,
# so they are errors instead.
_STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "orchestrator": ("foundation", "enterprise"),
    "gateway": ("foundation", "enterprise"),
    "messaging": ("foundation", "enterprise"),
}


class WaiverConfig(_Strict):
    """A documented exception to one policy rule or checkov check, shown in every report."""

    check: str = Field(pattern=r"^(AGS-[A-Z0-9]+-\d{3}|CKV2?_[A-Z0-9_]+)$", description="Rule or check id.")
    resource: str = Field(
        default="*", min_length=1, description="Resource name or glob (`*-app`, `*` for all) it applies to."
    )
    reason: str = Field(min_length=20, description="Why the exception is acceptable; reviewed like code.")

    def covers(self, resource_name: str) -> bool:
        """Whether this waiver applies to the resource named ``resource_name``."""
        return fnmatch.fnmatchcase(resource_name, self.resource)


class StackConfig(_Strict):
    """One environment: which blueprint on which cloud, and its settings."""

    blueprint: Literal["pilot", "foundation", "enterprise"]
    cloud: Literal["azure", "aws", "kubernetes"]
    location: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="Cloud region, e.g. swedencentral.")
    name_prefix: str = Field(pattern=r"^[a-z][a-z0-9]{1,7}$", description="2-8 lowercase letters/digits.")
    environment: str = Field(pattern=r"^[a-z][a-z0-9]{1,9}$", description="2-10 lowercase letters/digits.")
    tags: dict[str, str] = Field(default_factory=dict)
    agents: tuple[AgentConfig, ...] = Field(min_length=1)
    models: tuple[ModelDeploymentConfig, ...] = Field(min_length=1)
    memory: MemoryConfig
    log_retention_days: int = Field(default=30, ge=30, le=730)
    vector_search: VectorSearchConfig | None = None
    functions: FunctionsConfig = FunctionsConfig()
    content_filter: ContentFilterConfig = ContentFilterConfig()
    api: ApiConfig = ApiConfig()
    orchestrator: OrchestratorConfig | None = None
    gateway: GatewayConfig | None = None
    messaging: MessagingConfig | None = None
    waivers: tuple[WaiverConfig, ...] = ()

    @model_validator(mode="after")
    def _references_resolve(self) -> StackConfig:
        _require_unique("agents", [a.name for a in self.agents])
        _require_unique("models", [m.name for m in self.models])
        self._stage_keys_fit()
        deployments = [m.name for m in self.models]
        references = [(f"agents[{i}].model", agent.model) for i, agent in enumerate(self.agents)]
        if self.orchestrator is not None:
            references.append(("orchestrator.model", self.orchestrator.model))
            if self.orchestrator.name in {a.name for a in self.agents}:
                raise ValueError(f"{NAMESPACE}:orchestrator.name: '{self.orchestrator.name}' is also an agent's name")
        references.append(("memory.embeddingDeployment", self.memory.embedding_deployment))
        for key, deployment in references:
            if deployment not in deployments:
                raise ValueError(
                    f"{NAMESPACE}:{key}: '{deployment}' is not a deployment in {NAMESPACE}:models "
                    f"(deployments: {', '.join(deployments)})"
                )
        return self

    def _stage_keys_fit(self) -> None:
        for key, stages in _STAGE_KEYS.items():
            if getattr(self, key) is not None and self.blueprint not in stages:
                raise ValueError(
                    f"{NAMESPACE}:{key} applies to the {' and '.join(stages)} blueprints, not '{self.blueprint}'; "
                    "remove it or change agentstage:blueprint"
                )
        if self.blueprint in ("foundation", "enterprise"):
            missing = [k for k in ("orchestrator", "gateway", "messaging") if getattr(self, k) is None]
            if not self.vector_search_enabled:
                missing.append("vectorSearch")
            if missing:
                raise ValueError(
                    f"the {self.blueprint} blueprint needs " + ", ".join(f"{NAMESPACE}:{k}" for k in missing)
                )

    @property
    def vector_search_enabled(self) -> bool:
        return self.vector_search is not None and self.vector_search.enabled

    @property
    def api_audience(self) -> str:
        return self.api.audience or f"api://{self.name_prefix}-{self.environment}"


def _require_unique(key: str, names: list[str]) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{key}: names must be unique; repeated: {', '.join(duplicates)}")


class StackConfigError(ValueError):
    """A stack file says something agentstage cannot use; the message says where and how to fix it."""


def parse_stack_config(raw: dict[str, str], source: str) -> StackConfig:
    """Validate the ``agentstage:`` keys of a stack's config.

    ``raw`` maps full keys (``agentstage:agents``) to values as the Pulumi engine passes them: strings,
    with structured values JSON-encoded. Keys of other namespaces (provider settings such as
    ``azure-native:location``) are left to their providers. ``source`` names the stack file in errors.
    """
    allowed = {field.alias or name for name, field in StackConfig.model_fields.items()}
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        if key not in allowed:
            raise StackConfigError(
                f"{source}: unknown key '{full_key}'; allowed keys: "
                + ", ".join(f"{NAMESPACE}:{k}" for k in sorted(allowed))
            )
        values[key] = _decode(value)
    try:
        return StackConfig.model_validate(values)
    except ValidationError as error:
        raise StackConfigError(_describe(error, source)) from None


def _decode(value: str) -> Any:
    """Structured values arrive JSON-encoded; scalars stay strings (pydantic converts '30' to 30)."""
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _describe(error: ValidationError, source: str) -> str:
    """One line per problem: file, key path as written in the file, what is wrong, what was given."""
    lines = []
    problems = error.errors(include_url=False)
    for problem in problems:
        if problem["type"] == "too_short" and _has_problem_below(problem["loc"], problems):
            continue  # a list whose items were rejected: the items' own errors say why
        location = _key_path(problem["loc"])
        if problem["type"] == "extra_forbidden":
            parent = _key_path(problem["loc"][:-1])
            lines.append(
                f"{source}: unknown key '{location}'"
                + (f"; allowed keys under {parent}: {_allowed_under(problem['loc'][:-1])}" if parent else "")
            )
            continue
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            lines.append(f"{source}: missing required key '{location}'")
        elif location:
            given = problem.get("input")
            shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
            lines.append(f"{source}: {location}: {message}{shown}")
        else:
            lines.append(f"{source}: {message}")
    return "\n".join(lines)


def _has_problem_below(loc: tuple[int | str, ...], problems: list[Any]) -> bool:
    return any(len(p["loc"]) > len(loc) and tuple(p["loc"][: len(loc)]) == tuple(loc) for p in problems)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else f"{NAMESPACE}:{part}")
    return path


def _allowed_under(loc: tuple[int | str, ...]) -> str:
    model: Any = StackConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = next(f for n, f in model.model_fields.items() if (f.alias or n) == part)
        annotation = field.annotation
        model = next(
            (a for a in _flatten(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        if model is None:
            return "(not a mapping)"
    return ", ".join(sorted(f.alias or n for n, f in model.model_fields.items()))


def _flatten(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [a for arg in args for a in _flatten(arg)]
