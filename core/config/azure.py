"""Sections only the azure cloud has: Flex Consumption sizing, AI Search, API Management, Service Bus, the
VNet and Azure Policy - and what the neutral sections must say on Azure (:func:`check_azure`)."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from core.config.base import GUID, NAMESPACE, Strict, pattern
from core.config.regions import check_location
from core.config.sections import EMAIL

if TYPE_CHECKING:
    from core.config.stack import StackConfig


class VectorSearchConfig(Strict):
    """Optional managed vector search (Azure AI Search) for agent memory and retrieval."""

    enabled: bool = True
    sku: Literal["basic", "standard", "standard2", "standard3"] = "basic"
    replicas: int = Field(default=1, ge=1, le=12)
    partitions: Literal[1, 2, 3, 4, 6, 12] = 1


class FunctionsConfig(Strict):
    """Sizing of the serverless agents (Azure Functions Flex Consumption)."""

    instance_memory_mb: Literal[512, 2048, 4096] = 2048
    maximum_instance_count: int = Field(default=100, ge=1, le=1000)
    always_ready: int = Field(default=0, ge=0, le=20, description="Instances kept warm for HTTP triggers.")
    zone_redundant: bool = Field(default=False, description="Spread instances over availability zones.")


class GatewayConfig(Strict):
    """The API gateway (Azure API Management) in front of the agents and the models."""

    sku: Literal["Consumption", "BasicV2", "StandardV2"] = "BasicV2"
    capacity: int = Field(default=1, ge=1, le=10, description="Scale units (ignored by Consumption).")
    # API Management refuses a publisher email or name longer than 100 characters.
    publisher_email: str = Field(pattern=EMAIL, max_length=100, description="Receives APIM notifications.")
    publisher_name: str = Field(default="agentstage", min_length=1, max_length=100)
    tokens_per_minute: int = Field(default=20_000, ge=100, description="Token limit per calling application.")
    # Each id becomes an APIM named value inside validate-azure-ad-token's <client-application-ids>, and a
    # named value may hold a policy expression (@(...)) evaluated per request: only the GUID form of an
    # application (client) id is taken, so a caller's request can never choose an accepted id.
    caller_application_ids: tuple[Annotated[str, Field(pattern=GUID)], ...] = Field(
        default=(),
        description="Client ids of the applications (front ends) whose Entra ID tokens it accepts.",
    )


class MessagingConfig(Strict):
    """The message bus (Azure Service Bus) carrying tasks between the orchestrator and the agents."""

    sku: Literal["Standard", "Premium"] = "Standard"
    max_delivery_count: int = Field(default=5, ge=1, le=100, description="Deliveries before dead-lettering.")


class NetworkConfig(Strict):
    """The enterprise stage's private network; bring your own VNet and DNS zones in hub-and-spoke estates."""

    address_space: str = Field(
        default="10.40.0.0/16",
        pattern=pattern(
            r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-2])$", "an IPv4 range from /16 to /22, e.g. 10.40.0.0/16"
        ),
        description="CIDR of the VNet to create (/16 to /22); ignored with existingVnetId.",
    )
    existing_vnet_id: str | None = Field(
        default=None,
        pattern=pattern(
            r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+$",
            "a VNet's resource id: /subscriptions/<id>/resourceGroups/<group>/providers/"
            "Microsoft.Network/virtualNetworks/<name>",
        ),
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


class PolicyConfig(Strict):
    """Azure Policy assignments guarding the stage after deployment (drift is caught, not just prevented)."""

    mode: Literal["enforce", "audit-only"] = Field(
        default="enforce", description="enforce: Deny where safe, Audit elsewhere; audit-only: never Deny."
    )


# Matched whole (fullmatch): a pattern ending in $ also matches before a final newline, which would then
# reach the resources.
AZURE_VM_SIZE = re.compile(r"Standard_[A-Za-z0-9_]+")
_ENTRA_AUDIENCE = re.compile(r"(api://|https://)[^\s/][^\s]*")

# What the enterprise blueprint's private network needs of each service tier: (key, tier, why).
_ISOLATED_TIERS = (
    (
        "messaging",
        "Premium",
        (
            "its Service Bus is private (public access off, reached through a private endpoint) and only "
            "Premium offers private endpoints; the foundation blueprint takes Standard or Premium"
        ),
    ),
    (
        "gateway",
        "StandardV2",
        (
            "its gateway reaches the models and agents through the VNet and only StandardV2 joins a VNet; "
            "the foundation blueprint takes Consumption, BasicV2 or StandardV2"
        ),
    ),
)


def check_azure(config: StackConfig) -> None:
    """What the neutral sections must say on Azure: an Azure region, deployments with a version and capacity,
    Entra ID callers (no issuer of your own, an Entra audience), the tiers a private network needs, VM sizes
    and an image the stack's own registry holds."""
    check_location(config.location, ("azure",))
    for index, model in enumerate(config.models):
        missing = [key for key in ("version", "capacity") if getattr(model, key) is None]
        if missing:
            raise ValueError(
                f"{NAMESPACE}:models[{index}] ({model.name}): an Azure OpenAI deployment needs "
                f'{" and ".join(missing)} (e.g. version: "2024-07-18", capacity: 10)'
            )
    if config.api.issuer or config.api.jwks_url:
        raise ValueError(
            f"{NAMESPACE}:api.issuer and {NAMESPACE}:api.jwksUrl apply to the aws cloud; on azure callers "
            "present Entra ID tokens of the subscription's tenant and both are derived from it"
        )
    audience = config.api.audience
    if audience is not None and not (_ENTRA_AUDIENCE.fullmatch(audience) or re.fullmatch(GUID, audience)):
        raise ValueError(
            f"{NAMESPACE}:api.audience: {audience!r} is not an Entra ID audience; expected the API's "
            "application ID URI (api://<name>, or an https:// URI of a verified domain) or its application "
            "(client) id, a GUID like 11111111-2222-3333-4444-555555555555"
        )
    if config.blueprint == "enterprise":
        for key, tier, why in _ISOLATED_TIERS:
            section = getattr(config, key)
            if section is not None and section.sku != tier:
                raise ValueError(
                    f"{NAMESPACE}:{key}.sku: '{section.sku}' cannot serve the enterprise blueprint, which needs "
                    f"{tier}: {why}"
                )
    kubernetes = config.kubernetes
    if kubernetes is None:
        return
    for pool in ("system_pool", "user_pool"):
        size = getattr(kubernetes, pool).vm_size
        if not AZURE_VM_SIZE.fullmatch(size):
            raise ValueError(
                f"{NAMESPACE}:kubernetes.{to_camel(pool)}.vmSize: {size!r} is not an Azure VM size "
                "(Standard_<family><vCPUs>..., e.g. Standard_D4ds_v5)"
            )
    own_cluster = [
        k
        for k in ("kubeconfig_context", "settings_secret", "service_account_annotations")
        if k in kubernetes.model_fields_set
    ]
    if own_cluster:
        raise ValueError(
            f"{NAMESPACE}:kubernetes.{to_camel(own_cluster[0])} applies to the kubernetes cloud (your own "
            "cluster); on azure the stack creates the cluster and its identities"
        )
    check_own_registry(config)


REGISTRY_DOMAIN = "azurecr.io"
_SUFFIX = "<5 hex digits>"


def registry_host(name_prefix: str, environment: str, subscription_id: str | None = None) -> str:
    """The login server of the container registry the Azure enterprise stack creates.

    Its name is the kit's naming rule for ``container_registry`` / ``registry`` (components.azure.naming):
    ``<prefix><environment>crregistry`` and a 5-hex-digit suffix derived from the subscription and the
    resource group (``rg-<prefix>-<environment>``), so without ``subscription_id`` the suffix is left as
    ``<5 hex digits>``.
    """
    head = re.sub(r"[^a-z0-9]", "", f"{name_prefix}{environment}crregistry".lower())[: 50 - 5]
    if subscription_id is None:
        return f"{head}{_SUFFIX}.{REGISTRY_DOMAIN}"
    group = f"rg-{name_prefix}-{environment}"
    suffix = hashlib.sha256(f"{subscription_id}/{group}".encode()).hexdigest()[:5]
    return f"{head}{suffix}.{REGISTRY_DOMAIN}"


def check_own_registry(config: StackConfig, subscription_id: str | None = None) -> None:
    """The image must be in the registry the stack creates: the cluster's kubelet identity is granted
    AcrPull on that registry alone, so an image anywhere else could never be pulled.

    ``subscription_id`` (the stack file's ``azure-native:subscriptionId``, when it has one) pins the
    registry's exact name; without it the name's subscription-derived suffix may be any 5 hex digits.
    """
    if config.kubernetes is None or config.blueprint != "enterprise":
        return
    image = config.kubernetes.image
    host, _, path = image.partition("/")
    expected = registry_host(config.name_prefix, config.environment, subscription_id)
    if subscription_id is None:
        head = expected.removesuffix(f"{_SUFFIX}.{REGISTRY_DOMAIN}")
        matches = re.fullmatch(rf"{re.escape(head)}[0-9a-f]{{5}}\.{re.escape(REGISTRY_DOMAIN)}", host)
    else:
        matches = host == expected
    if matches:
        return
    how = (
        f"(from azure-native:subscriptionId {subscription_id})"
        if subscription_id is not None
        else f"({_SUFFIX}: derived from your subscription; set azure-native:subscriptionId in the stack file "
        f"to have it named here, or read it with `az acr list -g rg-{config.name_prefix}-{config.environment} "
        '--query "[].loginServer"` after the first deployment)'
    )
    raise ValueError(
        f"{NAMESPACE}:kubernetes.image: '{image}' is not in the registry this stack creates; the cluster's "
        f"kubelet may pull only from {expected} {how}: use {expected}/{path}"
    )
