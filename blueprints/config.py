"""The stack configuration: everything a stack file may say, validated before anything is built.

Stack files (``stacks/Pulumi.<stack>.yaml``) use Pulumi's ``agentstage:`` namespace with camelCase keys.
Unknown keys are errors - a typo must never fall back to a default silently - and every error names
the stack file, the key as written there, and what is allowed.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from agent_runtime.governance.budgets import BudgetRule

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


class MemoryConfig(_Strict):
    """How agents embed text for long-term memory."""

    embedding_deployment: str = Field(
        min_length=1, description="Name of an embeddings deployment in `models`."
    )
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
        default=None,
        description="Expected token audience (the API's app ID URI); defaults to api://<prefix>-<env>.",
    )


class RoutingRuleConfig(_Strict):
    """Delegate to ``agents`` when ``match`` (a regular expression) is found in the request."""

    match: str = Field(min_length=1)
    agents: tuple[Name, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _compiles(self) -> RoutingRuleConfig:
        try:
            re.compile(self.match)
        except re.error as error:
            raise ValueError(f"match: not a regular expression: {error}") from None
        return self


class OrchestratorConfig(_Strict):
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


class GatewayConfig(_Strict):
    """The API gateway (Azure API Management) in front of the agents and the models."""

    sku: Literal["Consumption", "BasicV2", "StandardV2"] = "BasicV2"
    capacity: int = Field(default=1, ge=1, le=10, description="Scale units (ignored by Consumption).")
    publisher_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Receives APIM notifications.")
    publisher_name: str = Field(default="agentstage", min_length=1)
    tokens_per_minute: int = Field(default=20_000, ge=100, description="Token limit per calling application.")
    caller_application_ids: tuple[str, ...] = Field(
        default=(),
        description="Client ids of the applications (front ends) whose Entra ID tokens it accepts.",
    )


class MessagingConfig(_Strict):
    """The message bus (Azure Service Bus) carrying tasks between the orchestrator and the agents."""

    sku: Literal["Standard", "Premium"] = "Standard"
    max_delivery_count: int = Field(default=5, ge=1, le=100, description="Deliveries before dead-lettering.")


class NetworkConfig(_Strict):
    """The enterprise stage's private network; bring your own VNet and DNS zones in hub-and-spoke estates."""

    address_space: str = Field(
        default="10.40.0.0/16",
        pattern=r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-2])$",
        description="CIDR of the VNet to create (/16 to /22); ignored with existingVnetId.",
    )
    existing_vnet_id: str | None = Field(
        default=None,
        pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+$",
        description="Resource id of a VNet to use instead of creating one (needs existingSubnetIds).",
    )
    existing_subnet_ids: dict[Literal["gateway", "functions", "aks", "endpoints"], str] = Field(
        default_factory=dict, description="Subnet resource ids by role when bringing your own VNet."
    )
    dns_zone_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Private DNS zone resource ids by zone name (privatelink.openai.azure.com, ...) the hub "
        "already links; zones not listed are created and linked to the VNet.",
    )

    @model_validator(mode="after")
    def _own_vnet_complete(self) -> NetworkConfig:
        roles = {"gateway", "functions", "aks", "endpoints"}
        if self.existing_vnet_id and set(self.existing_subnet_ids) != roles:
            missing = ", ".join(sorted(roles - set(self.existing_subnet_ids)))
            raise ValueError(f"existingVnetId needs existingSubnetIds for every role; missing: {missing}")
        if self.existing_subnet_ids and not self.existing_vnet_id:
            raise ValueError("existingSubnetIds needs existingVnetId (the VNet the subnets belong to)")
        return self


class NodePoolConfig(_Strict):
    """An autoscaling AKS node pool."""

    vm_size: str = Field(default="Standard_D4ds_v5", pattern=r"^Standard_[A-Za-z0-9_]+$")
    min_count: int = Field(default=1, ge=0, le=100)
    max_count: int = Field(default=3, ge=1, le=1000)

    @model_validator(mode="after")
    def _bounds(self) -> NodePoolConfig:
        if self.min_count > self.max_count:
            raise ValueError(f"minCount ({self.min_count}) is above maxCount ({self.max_count})")
        return self


_IMAGE = r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9._-]{1,128}|@sha256:[0-9a-f]{64})$"


class KubernetesConfig(_Strict):
    """Containerized agents on Kubernetes, scaled on their queue depth (AKS, or a cluster you already run)."""

    image: str = Field(
        pattern=_IMAGE,
        description="The runtime image, by tag or (better) digest: <registry>/<repository>@sha256:<digest>.",
    )
    agents: tuple[Name, ...] = Field(
        min_length=1, description="Agents that run on Kubernetes; the others stay serverless (hybrid)."
    )
    namespace: Name = "agents"
    system_pool: NodePoolConfig = NodePoolConfig.model_validate({"vmSize": "Standard_D2ds_v5", "maxCount": 3})
    user_pool: NodePoolConfig = NodePoolConfig()
    kubernetes_version: str | None = Field(default=None, pattern=r"^1\.\d+(\.\d+)?$")
    private_cluster: bool = Field(default=False, description="API server reachable only from the VNet.")
    admin_group_object_ids: tuple[str, ...] = Field(
        default=(), description="Entra ID groups that administer the cluster (Azure RBAC Cluster Admin)."
    )
    encryption_at_host: bool = Field(
        default=False,
        description="Encrypt node temp disks and caches; needs the subscription feature "
        "Microsoft.Compute/EncryptionAtHost registered first.",
    )
    zone_redundant_registry: bool = Field(
        default=False, description="Replicate the (Premium) registry across the region's availability zones."
    )
    max_replicas: int = Field(default=10, ge=1, le=1000, description="Upper bound of each agent's workers.")
    messages_per_replica: int = Field(
        default=5, ge=1, le=1000, description="Queue depth per worker replica KEDA aims for."
    )
    kubeconfig_context: str | None = Field(
        default=None, description="kubernetes cloud only: the kubeconfig context of your cluster."
    )
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="kubernetes cloud only: annotations binding the agents' service account to a cloud "
        "identity (azure.workload.identity/client-id, eks.amazonaws.com/role-arn).",
    )
    settings_secret: str | None = Field(
        default=None,
        description="kubernetes cloud only: an existing Secret whose keys (AGENTSTAGE_<SETTING>) the agents "
        "read as settings files (what must not be in the stack file: API keys, connection URLs).",
    )


class RuntimeBudgetConfig(BudgetRule):
    """A budget the runtime enforces on every app of the stage (AGENTSTAGE_BUDGETS): the runtime's own rule,
    with the stack file's camelCase keys (``windowSeconds``, ``costUsd``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False)


class BudgetConfig(_Strict):
    """A monthly cost budget on the stage's resource group, alerting by email."""

    amount: float = Field(gt=0, description="Monthly budget in the billing currency.")
    thresholds: tuple[int, ...] = Field(default=(50, 80, 100), min_length=1)
    contact_emails: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1)


class AlertsConfig(_Strict):
    """Alert rules on the agents' server errors, latency and model spend (sent to the budget's contacts)."""

    server_error_percent: float = Field(default=5.0, gt=0, le=100, description="5xx share of requests.")
    latency_p95_ms: int = Field(
        default=30_000, gt=0, description="95th percentile of request duration (an agent run spans calls)."
    )
    daily_spend_usd: float = Field(default=50.0, gt=0, description="Priced model usage over 24 hours.")


class PolicyConfig(_Strict):
    """Azure Policy assignments guarding the stage after deployment (drift is caught, not just prevented)."""

    mode: Literal["enforce", "audit-only"] = Field(
        default="enforce", description="enforce: Deny where safe, Audit elsewhere; audit-only: never Deny."
    )


# Keys that only mean something on some stages or clouds: set elsewhere they would be ignored, so they are
# errors instead. (blueprints, clouds) that accept the key.
_ALL_CLOUDS = ("azure", "aws", "kubernetes")
_STAGE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "orchestrator": (("foundation", "enterprise"), _ALL_CLOUDS),
    "gateway": (("foundation", "enterprise"), ("azure", "aws")),
    "messaging": (("foundation", "enterprise"), ("azure", "aws")),
    "kubernetes": (("enterprise",), _ALL_CLOUDS),
    "network": (("enterprise",), ("azure", "aws")),
    "budget": (("enterprise",), ("azure", "aws")),
    "alerts": (("enterprise",), ("azure", "aws")),
    "policy": (("enterprise",), ("azure",)),
    "runtime_settings": (("enterprise",), ("kubernetes",)),
}

# Keys each (blueprint, cloud) cannot do without.
_REQUIRED_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("foundation", "azure"): ("orchestrator", "gateway", "messaging", "vector_search"),
    ("enterprise", "azure"): (
        "orchestrator",
        "gateway",
        "messaging",
        "vector_search",
        "kubernetes",
        "network",
        "budget",
    ),
    ("enterprise", "kubernetes"): ("kubernetes", "runtime_settings"),
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
    kubernetes: KubernetesConfig | None = None
    network: NetworkConfig | None = None
    budget: BudgetConfig | None = None
    runtime_budgets: tuple[RuntimeBudgetConfig, ...] = Field(
        default=(),
        description="Tokens, requests and cost per window, per tenant, agent or caller, enforced by every app "
        "on the stage's shared ledger.",
    )
    alerts: AlertsConfig | None = None
    policy: PolicyConfig | None = None
    runtime_settings: dict[str, str] | None = Field(
        default=None,
        description="kubernetes cloud: the runtime's settings (names of its contract, e.g. llm_endpoint, "
        "bus_backend) for services the cluster reaches but this stack does not create.",
    )
    waivers: tuple[WaiverConfig, ...] = ()

    def _rules_name_agents(self, rules: Sequence[RoutingRuleConfig]) -> None:
        names = [agent.name for agent in self.agents]
        for index, rule in enumerate(rules):
            for position, agent in enumerate(rule.agents):
                if agent not in names:
                    raise ValueError(
                        f"{NAMESPACE}:orchestrator.rules[{index}].agents[{position}]: '{agent}' is not one of "
                        f"{NAMESPACE}:agents ({', '.join(names)})"
                    )

    @model_validator(mode="after")
    def _references_resolve(self) -> StackConfig:
        _require_unique("agents", [a.name for a in self.agents])
        _require_unique("models", [m.name for m in self.models])
        _require_unique("runtimeBudgets", [b.name for b in self.runtime_budgets])
        if self.runtime_budgets and "budgets" in (self.runtime_settings or {}):
            raise ValueError(
                f"{NAMESPACE}:runtimeSettings.budgets: declare runtime budgets in {NAMESPACE}:runtimeBudgets only"
            )
        self._stage_keys_fit()
        deployments = [m.name for m in self.models]
        references = [(f"agents[{i}].model", agent.model) for i, agent in enumerate(self.agents)]
        if self.orchestrator is not None:
            references.append(("orchestrator.model", self.orchestrator.model))
            if self.orchestrator.name in {a.name for a in self.agents}:
                raise ValueError(
                    f"{NAMESPACE}:orchestrator.name: '{self.orchestrator.name}' is also an agent's name"
                )
            self._rules_name_agents(self.orchestrator.rules)
        references.append(("memory.embeddingDeployment", self.memory.embedding_deployment))
        for key, deployment in references:
            if deployment not in deployments:
                raise ValueError(
                    f"{NAMESPACE}:{key}: '{deployment}' is not a deployment in {NAMESPACE}:models "
                    f"(deployments: {', '.join(deployments)})"
                )
        return self

    def _stage_keys_fit(self) -> None:
        for key, (stages, clouds) in _STAGE_KEYS.items():
            if getattr(self, key) is None:
                continue
            if self.blueprint not in stages:
                raise ValueError(
                    f"{NAMESPACE}:{to_camel(key)} applies to the {' and '.join(stages)} blueprints, not "
                    f"'{self.blueprint}'; remove it or change agentstage:blueprint"
                )
            if self.cloud not in clouds:
                raise ValueError(
                    f"{NAMESPACE}:{to_camel(key)} applies to the {' and '.join(clouds)} clouds, not "
                    f"'{self.cloud}'; remove it or change agentstage:cloud"
                )
        required = _REQUIRED_KEYS.get((self.blueprint, self.cloud), ())
        missing = [
            to_camel(key)
            for key in required
            if (not self.vector_search_enabled if key == "vector_search" else getattr(self, key) is None)
        ]
        if missing:
            raise ValueError(
                f"the {self.blueprint} blueprint on {self.cloud} needs "
                + ", ".join(f"{NAMESPACE}:{k}" for k in missing)
            )
        if self.kubernetes is not None:
            self._kubernetes_agents_known(self.kubernetes)
        if self.runtime_settings is not None:
            _runtime_settings_known(self.runtime_settings)
            if self.kubernetes is not None:
                _scaler_can_read_the_bus(self.runtime_settings, self.kubernetes.service_account_annotations)

    def _kubernetes_agents_known(self, kubernetes: KubernetesConfig) -> None:
        names = [agent.name for agent in self.agents]
        unknown = [name for name in kubernetes.agents if name not in names]
        if unknown:
            raise ValueError(
                f"{NAMESPACE}:kubernetes.agents: {', '.join(unknown)} not in {NAMESPACE}:agents "
                f"(agents: {', '.join(names)})"
            )
        if self.cloud == "kubernetes":
            azure_only = [
                k for k in ("encryption_at_host", "zone_redundant_registry") if getattr(kubernetes, k)
            ]
            if azure_only:
                raise ValueError(
                    f"{NAMESPACE}:kubernetes.{to_camel(azure_only[0])} applies to the azure cloud (a cluster "
                    "and registry the stack creates), not your own cluster"
                )
        if self.cloud == "azure":
            byo = [k for k in ("kubeconfig_context", "settings_secret") if getattr(kubernetes, k)]
            if kubernetes.service_account_annotations:
                byo.append("service_account_annotations")
            if byo:
                raise ValueError(
                    f"{NAMESPACE}:kubernetes.{to_camel(byo[0])} applies to the kubernetes cloud (your own "
                    "cluster); on azure the stack creates the cluster and its identities"
                )

    @property
    def vector_search_enabled(self) -> bool:
        return self.vector_search is not None and self.vector_search.enabled

    @property
    def api_audience(self) -> str:
        return self.api.audience or f"api://{self.name_prefix}-{self.environment}"


# What the blueprint sets itself in runtimeSettings (per agent), and what a shared cluster cannot use.
_SET_BY_BLUEPRINT = frozenset({"agents", "task_queue", "identity_client_id"})
_NEEDS_A_SHARED_BUS = ("sqs", "servicebus", "storage_queue")


def _runtime_settings_known(values: dict[str, str]) -> None:
    """Names must be settings of the runtime's contract, complete for a deployed agent, and not secret."""
    # Light (pydantic-settings); only the stacks that use runtimeSettings pay for the import.
    from agent_runtime.settings import Settings, cloud_required_fields

    unknown = sorted(set(values) - Settings.model_fields.keys())
    if unknown:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings: unknown runtime setting(s) {', '.join(unknown)}; see "
            "runtime/agent_runtime/settings.py for the names"
        )
    own = sorted(set(values) & _SET_BY_BLUEPRINT)
    if own:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings.{own[0]} is set by the blueprint for each agent; remove it"
        )
    missing = sorted(cloud_required_fields() - _SET_BY_BLUEPRINT - set(values))
    if missing:
        raise ValueError(f"{NAMESPACE}:runtimeSettings needs {', '.join(missing)} for a deployed agent")
    if values.get("bus_backend") not in _NEEDS_A_SHARED_BUS:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings.bus_backend must be one of {', '.join(_NEEDS_A_SHARED_BUS)}: "
            "workers on a cluster share their queues (the embedded sqlite queue is one process's)"
        )
    secret = sorted(
        name for name in values if name in {"llm_api_key", "api_key", "api_keys", "redis_url", "postgres_dsn"}
    )
    if secret:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings.{secret[0]} is a secret: put it in the Secret named by "
            f"{NAMESPACE}:kubernetes.settingsSecret, not in the stack file"
        )


# What KEDA needs to find and read each bus's queues on your own cluster: (runtime setting, annotation).
_SCALER_NEEDS: dict[str, tuple[str, str]] = {
    "sqs": ("aws_region", "eks.amazonaws.com/role-arn"),
    "servicebus": ("servicebus_namespace", "azure.workload.identity/client-id"),
    "storage_queue": ("storage_queue_account_url", "azure.workload.identity/client-id"),
}


def _scaler_can_read_the_bus(settings: dict[str, str], annotations: dict[str, str]) -> None:
    backend = settings["bus_backend"]
    setting, annotation = _SCALER_NEEDS[backend]
    if not settings.get(setting):
        raise ValueError(f"{NAMESPACE}:runtimeSettings.{setting} is needed with bus_backend '{backend}'")
    if not annotations.get(annotation):
        raise ValueError(
            f"{NAMESPACE}:kubernetes.serviceAccountAnnotations needs '{annotation}' with bus_backend "
            f"'{backend}': the agents and KEDA's queue-depth reads authenticate as that identity"
        )


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
        raise StackConfigError(describe_validation_error(error, source, StackConfig, f"{NAMESPACE}:")) from None


def _decode(value: str) -> Any:
    """Structured values arrive JSON-encoded; scalars stay strings (pydantic converts '30' to 30)."""
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def describe_validation_error(error: ValidationError, source: str, root: type[BaseModel], prefix: str = "") -> str:
    """One line per problem: file, key path as written in the file, what is wrong, what was given.

    ``root`` is the model the file was validated against (it lists the keys allowed where one is
    unknown); ``prefix`` goes before a top-level key (``agentstage:`` in a stack file).
    """
    lines = []
    problems = error.errors(include_url=False)
    for problem in problems:
        if problem["type"] == "too_short" and _has_problem_below(problem["loc"], problems):
            continue  # a list whose items were rejected: the items' own errors say why
        location = _key_path(problem["loc"], prefix)
        if problem["type"] == "extra_forbidden":
            parent = _key_path(problem["loc"][:-1], prefix)
            allowed = _allowed_under(problem["loc"][:-1], root)
            lines.append(
                f"{source}: unknown key '{location}'"
                + (f"; allowed keys under {parent}: {allowed}" if parent else f"; allowed keys: {allowed}")
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


def _key_path(loc: tuple[int | str, ...], prefix: str) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else f"{prefix}{part}")
    return path


def _allowed_under(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            continue  # a key of a mapping (an agent's name): its values are the model already found
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
