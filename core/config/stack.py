"""The stack configuration: everything a stack file may say, validated before anything is built.

Stack files (``stacks/Pulumi.<stack>.yaml``) use Pulumi's ``agentstage:`` namespace with camelCase keys.
Unknown keys are errors - a typo must never fall back to a default silently - and every error names
the stack file, the key as written there, and what is allowed. A neutral core (agents, models, memory,
budgets) is shared by every cloud; each cloud's sections and what the neutral ones must say on that
cloud are checked by that cloud's module (``azure``, ``aws``, ``kubernetes``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from core.config.agents import (
    AgentConfig,
    MemoryConfig,
    ModelDeploymentConfig,
    OrchestratorConfig,
    RoutingRuleConfig,
    RuntimeBudgetConfig,
    check_tools,
)
from core.config.aws import (
    EKS_DEFAULT_KUBERNETES_VERSION,
    AwsGatewayConfig,
    EksConfig,
    LambdaConfig,
    VectorDatabaseConfig,
    VpcConfig,
    check_aws,
)
from core.config.azure import (
    FunctionsConfig,
    GatewayConfig,
    MessagingConfig,
    NetworkConfig,
    PolicyConfig,
    VectorSearchConfig,
    check_azure,
    check_own_registry,
)
from core.config.base import (
    NAMESPACE,
    StackConfigError,
    Strict,
    describe_validation_error,
    did_you_mean,
    pattern,
    require_unique,
)
from core.config.kubernetes import check_kubernetes
from core.config.sections import (
    AlertsConfig,
    ApiConfig,
    BudgetConfig,
    ContentFilterConfig,
    KubernetesConfig,
    WaiverConfig,
    runtime_settings_known,
    scaler_can_read_the_bus,
)
from core.config.tags import check_tags
from core.graph import SECRET

BUILT: tuple[tuple[str, str], ...] = (
    ("pilot", "azure"),
    ("foundation", "azure"),
    ("enterprise", "azure"),
    ("enterprise", "kubernetes"),
    ("pilot", "aws"),
    ("foundation", "aws"),
    ("enterprise", "aws"),
)
"""The (blueprint, cloud) pairs the kit builds (``blueprints.registry`` maps each to its function)."""

# Keys that only mean something on some stages and clouds: set elsewhere they would be ignored, so they
# are errors instead. key -> the (blueprint, cloud) pairs built to use it.
_EVERY_STAGE = ("pilot", "foundation", "enterprise")
_LATER_STAGES = ("foundation", "enterprise")
_NOT_YOUR_OWN_CLUSTER = tuple(place for place in BUILT if place[1] != "kubernetes")
_ON_AWS = tuple((stage, "aws") for stage in _EVERY_STAGE)
_LATER_ON_AWS = tuple((stage, "aws") for stage in _LATER_STAGES)
_KEY_PLACES: dict[str, tuple[tuple[str, str], ...]] = {
    "orchestrator": tuple((stage, cloud) for stage in _LATER_STAGES for cloud in ("azure", "kubernetes"))
    + _LATER_ON_AWS,
    "gateway": tuple((stage, "azure") for stage in _LATER_STAGES),
    "messaging": tuple((stage, "azure") for stage in _LATER_STAGES),
    "kubernetes": (("enterprise", "azure"), ("enterprise", "kubernetes"), ("enterprise", "aws")),
    "eks": (("enterprise", "aws"),),
    "network": (("enterprise", "azure"),),
    "budget": (("enterprise", "azure"), *_ON_AWS),
    "alerts": (("enterprise", "azure"), *_ON_AWS),
    "policy": (("enterprise", "azure"),),
    "runtime_settings": (("enterprise", "kubernetes"),),
    "functions": tuple((stage, "azure") for stage in _EVERY_STAGE),
    "vector_search": tuple((stage, "azure") for stage in _EVERY_STAGE),
    "lambda_function": _ON_AWS,
    "api_gateway": _LATER_ON_AWS,
    "vpc": _LATER_ON_AWS,
    "vector_database": _LATER_ON_AWS,
    "api": _NOT_YOUR_OWN_CLUSTER,
    "content_filter": _NOT_YOUR_OWN_CLUSTER,
    "tags": _NOT_YOUR_OWN_CLUSTER,
}
# Where the job of a key that does not apply to your own cluster is done there instead.
_ON_YOUR_OWN_CLUSTER: dict[str, str] = {
    "api": "on your own cluster runtimeSettings.jwt_issuer, jwt_audience and jwt_jwks_url say which callers' "
    "tokens the agents accept",
    "content_filter": "on your own cluster the models are the endpoint of runtimeSettings.llm_endpoint, whose "
    "own content filter applies",
    "tags": "on your own cluster the stack creates Kubernetes objects only, no cloud resource to tag",
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
    ("pilot", "aws"): ("budget",),
    ("foundation", "aws"): ("orchestrator", "api_gateway", "budget"),
    ("enterprise", "aws"): ("orchestrator", "api_gateway", "budget", "kubernetes", "eks"),
}


BLOCK_NAMES = {
    "gateway": "the API gateway",
    "ingest": "the knowledge ingestion worker",
    "authorizer": "the AWS gateway's token authorizer",
}
"""Names the blueprints give their own identities and apps (blueprints/foundation.py: GATEWAY, INGEST;
blueprints/aws_foundation.py: AUTHORIZER)."""


class StackConfig(Strict):
    """One environment: which blueprint on which cloud, and its settings."""

    blueprint: Literal["pilot", "foundation", "enterprise"]
    cloud: Literal["azure", "aws", "kubernetes"]
    location: str = Field(
        min_length=1, description="Cloud region, e.g. swedencentral or eu-west-1 (checked per cloud)."
    )
    name_prefix: str = Field(
        pattern=pattern(
            r"^[a-z][a-z0-9]{1,7}$", "2-8 lowercase letters or digits, starting with a letter (e.g. ags)"
        ),
        description="2-8 lowercase letters/digits.",
    )
    environment: str = Field(
        pattern=pattern(
            r"^[a-z][a-z0-9]{1,9}$",
            "2-10 lowercase letters or digits, starting with a letter (e.g. dev, prod)",
        ),
        description="2-10 lowercase letters/digits.",
    )
    tags: dict[str, str] = Field(default_factory=dict)
    agents: tuple[AgentConfig, ...] = Field(min_length=1)
    models: tuple[ModelDeploymentConfig, ...] = Field(min_length=1)
    memory: MemoryConfig
    log_retention_days: int = Field(default=30, ge=30, le=730)
    vector_search: VectorSearchConfig | None = None
    functions: FunctionsConfig = FunctionsConfig()
    lambda_function: LambdaConfig = Field(default_factory=LambdaConfig, alias="lambda")
    content_filter: ContentFilterConfig = ContentFilterConfig()
    api: ApiConfig = ApiConfig()
    orchestrator: OrchestratorConfig | None = None
    gateway: GatewayConfig | None = None
    api_gateway: AwsGatewayConfig | None = None
    vpc: VpcConfig | None = None
    vector_database: VectorDatabaseConfig | None = None
    messaging: MessagingConfig | None = None
    kubernetes: KubernetesConfig | None = None
    eks: EksConfig | None = None
    network: NetworkConfig | None = None
    budget: BudgetConfig | None = None
    runtime_budgets: tuple[RuntimeBudgetConfig, ...] = Field(
        default=(),
        description="Tokens, requests and cost per window, per tenant, agent, caller or calling application, "
        "enforced by every app on the stage's shared ledger.",
    )
    alerts: AlertsConfig | None = None
    policy: PolicyConfig | None = None
    runtime_settings: dict[str, str] | None = Field(
        default=None,
        description="kubernetes cloud: the runtime's settings (names of its contract, e.g. llm_endpoint, "
        "bus_backend) for services the cluster reaches but this stack does not create.",
    )
    waivers: tuple[WaiverConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _eks_version_by_default(cls, data: Any) -> Any:
        """On aws an absent ``kubernetes.kubernetesVersion`` is the newest minor the kit pins its EKS add-ons
        for: EKS's own default moves with its releases, the add-ons' pins do not."""
        if not isinstance(data, dict) or data.get("cloud") != "aws":
            return data
        kubernetes = data.get("kubernetes")
        if not isinstance(kubernetes, dict) or "kubernetesVersion" in kubernetes:
            return data
        return {**data, "kubernetes": {**kubernetes, "kubernetesVersion": EKS_DEFAULT_KUBERNETES_VERSION}}

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
        require_unique(f"{NAMESPACE}:agents", [a.name for a in self.agents])
        named = [(f"agents[{i}].name", a.name) for i, a in enumerate(self.agents)]
        if self.orchestrator is not None:
            named.append(("orchestrator.name", self.orchestrator.name))
        for where, name in named:
            if name in BLOCK_NAMES:
                raise ValueError(
                    f"{NAMESPACE}:{where}: '{name}' names {BLOCK_NAMES[name]}, which has an identity of its "
                    "own on the foundation and enterprise stages; choose another name"
                )
        require_unique(f"{NAMESPACE}:models", [m.name for m in self.models])
        require_unique(f"{NAMESPACE}:runtimeBudgets", [b.name for b in self.runtime_budgets])
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
        own_cluster = self.cloud == "kubernetes"
        check_tools(self.agents, (self.runtime_settings or {}).get("tool_modules"), own_modules=own_cluster)
        return self

    def _stage_keys_fit(self) -> None:
        place = (self.blueprint, self.cloud)
        problem = misplaced(self.blueprint, self.cloud, self.model_fields_set)
        if problem:
            raise ValueError(problem)
        check_tags(self.cloud, self.tags)
        required = _REQUIRED_KEYS.get(place, ())
        missing = [
            key_name(key)
            for key in required
            if (not self.vector_search_enabled if key == "vector_search" else getattr(self, key) is None)
        ]
        if missing:
            raise ValueError(f"the {self.blueprint} blueprint on {self.cloud} needs " + ", ".join(missing))
        if self.kubernetes is not None:
            names = [agent.name for agent in self.agents]
            unknown = [name for name in self.kubernetes.agents if name not in names]
            if unknown:
                raise ValueError(
                    f"{NAMESPACE}:kubernetes.agents: {', '.join(unknown)} not in {NAMESPACE}:agents "
                    f"(agents: {', '.join(names)})"
                )
        if self.runtime_settings is not None:
            runtime_settings_known(self.runtime_settings)
            if self.kubernetes is not None:
                scaler_can_read_the_bus(self.runtime_settings, self.kubernetes.service_account_annotations)
        CLOUD_CHECKS[self.cloud](self)

    @property
    def vector_search_enabled(self) -> bool:
        return self.vector_search is not None and self.vector_search.enabled

    @property
    def api_audience(self) -> str:
        return self.api.audience or f"api://{self.name_prefix}-{self.environment}"


CLOUD_CHECKS: dict[str, Callable[[StackConfig], None]] = {
    "azure": check_azure,
    "aws": check_aws,
    "kubernetes": check_kubernetes,
}
"""What each cloud requires of the neutral sections (raising a ValueError that names the key)."""


def misplaced(blueprint: str, cloud: str, fields: set[str] | frozenset[str]) -> str | None:
    """Why ``fields`` (of :class:`StackConfig`) cannot be on ``blueprint`` on ``cloud``, if they cannot: the
    pair is not built, or a key applies elsewhere (and would be ignored here)."""
    if (blueprint, cloud) not in BUILT:
        available = ", ".join(f"{stage} on {on}" for stage, on in sorted(BUILT))
        return f"{NAMESPACE}:cloud '{cloud}' is not built yet for blueprint '{blueprint}'; available: {available}"
    for key, places in _KEY_PLACES.items():
        if key not in fields or (blueprint, cloud) in places:
            continue
        where = ", ".join(f"{stage} on {on}" for stage, on in places)
        instead = _ON_YOUR_OWN_CLUSTER.get(key) if cloud == "kubernetes" else None
        return (
            f"{key_name(key)} applies to {where}, not {blueprint} on {cloud}; remove it or change "
            f"{NAMESPACE}:blueprint / {NAMESPACE}:cloud" + (f" ({instead})" if instead else "")
        )
    return None


def key_name(field: str) -> str:
    """A field of :class:`StackConfig` as the stack file writes it (``agentstage:lambda``)."""
    info = StackConfig.model_fields[field]
    return f"{NAMESPACE}:{info.alias or to_camel(field)}"


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
                + did_you_mean(key, sorted(allowed)).replace("mean ", f"mean {NAMESPACE}:")
            )
        values[key] = _decode(value)
    if not values:
        raise StackConfigError(
            f"{source}: no {NAMESPACE}: settings; its config: mapping needs at least "
            + ", ".join(
                key_name(name) for name, field in StackConfig.model_fields.items() if field.is_required()
            )
            + " (the stack files in stacks/ are examples)"
        )
    _keys_fit_before_their_contents(values, source)
    try:
        config = StackConfig.model_validate(values)
    except ValidationError as error:
        raise StackConfigError(
            describe_validation_error(error, source, StackConfig, f"{NAMESPACE}:")
        ) from None
    _provider_region_matches(config, raw, source)
    _image_in_the_named_subscriptions_registry(config, raw, source)
    return config


def _keys_fit_before_their_contents(values: dict[str, Any], source: str) -> None:
    """A section that does not apply to the stack's blueprint and cloud is reported as such, before its
    contents are validated: ``gateway`` on a pilot says where gateways go, not which of its keys is missing."""
    blueprint, cloud = values.get("blueprint"), values.get("cloud")
    blueprints, clouds = (
        get_args(StackConfig.model_fields[key].annotation) for key in ("blueprint", "cloud")
    )
    if blueprint not in blueprints or cloud not in clouds:
        return  # the model reports the value itself
    aliases = {field.alias or to_camel(name): name for name, field in StackConfig.model_fields.items()}
    problem = misplaced(blueprint, cloud, {aliases[key] for key in values})
    if problem:
        raise StackConfigError(f"{source}: {problem}")


SUBSCRIPTION_KEY = "azure-native:subscriptionId"
"""The provider setting naming the Azure subscription, when the stack file pins it."""


def _image_in_the_named_subscriptions_registry(config: StackConfig, raw: dict[str, str], source: str) -> None:
    subscription = raw.get(SUBSCRIPTION_KEY)
    if config.cloud != "azure" or not subscription or subscription == SECRET:
        return
    try:
        check_own_registry(config, subscription)
    except ValueError as error:
        raise StackConfigError(f"{source}: {error}") from None


PROVIDER_REGION = {"aws": "aws:region"}
"""The provider setting that places a cloud's resources, which must be the stack's location."""


def _provider_region_matches(config: StackConfig, raw: dict[str, str], source: str) -> None:
    key = PROVIDER_REGION.get(config.cloud)
    if key is None:
        return
    region = raw.get(key)
    if region != config.location:
        found = f"it is '{region}'" if region else "it is not set"
        raise StackConfigError(
            f"{source}: {key} places every resource and must be the stack's location '{config.location}' "
            f"({NAMESPACE}:location); {found}"
        )


def _decode(value: str) -> Any:
    """Structured values arrive JSON-encoded; scalars stay strings (pydantic converts '30' to 30)."""
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
