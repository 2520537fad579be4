"""Sections only the azure cloud has: Flex Consumption sizing, AI Search, API Management, Service Bus, the
VNet and Azure Policy - and what the neutral sections must say on Azure (:func:`check_azure`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from core.config.base import NAMESPACE, Strict

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
    publisher_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Receives APIM notifications.")
    publisher_name: str = Field(default="agentstage", min_length=1)
    tokens_per_minute: int = Field(default=20_000, ge=100, description="Token limit per calling application.")
    caller_application_ids: tuple[str, ...] = Field(
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


class PolicyConfig(Strict):
    """Azure Policy assignments guarding the stage after deployment (drift is caught, not just prevented)."""

    mode: Literal["enforce", "audit-only"] = Field(
        default="enforce", description="enforce: Deny where safe, Audit elsewhere; audit-only: never Deny."
    )


AZURE_REGION = re.compile(r"^[a-z]+[a-z0-9]*$")
AZURE_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")


def check_azure(config: StackConfig) -> None:
    """What the neutral sections must say on Azure: deployments with a version and capacity, Entra ID
    callers (no issuer of your own), Azure regions and VM sizes."""
    if not AZURE_REGION.match(config.location):
        raise ValueError(
            f"{NAMESPACE}:location: '{config.location}' is not an Azure region name (lowercase letters and "
            "digits, e.g. swedencentral, westeurope)"
        )
    for index, model in enumerate(config.models):
        missing = [key for key in ("version", "capacity") if getattr(model, key) is None]
        if missing:
            raise ValueError(
                f"{NAMESPACE}:models[{index}] ({model.name}): an Azure OpenAI deployment needs "
                f'{" and ".join(missing)} (e.g. version: "2024-07-18", capacity: 10)'
            )
    if config.api.issuer or config.api.jwks_url:
        raise ValueError(
            f"{NAMESPACE}:api.issuer and api.jwksUrl apply to the aws cloud; on azure callers present Entra ID "
            "tokens of the subscription's tenant and both are derived from it"
        )
    kubernetes = config.kubernetes
    if kubernetes is None:
        return
    for pool in ("system_pool", "user_pool"):
        size = getattr(kubernetes, pool).vm_size
        if not AZURE_VM_SIZE.match(size):
            raise ValueError(
                f"{NAMESPACE}:kubernetes.{to_camel(pool)}.vmSize: '{size}' is not an Azure VM size "
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
