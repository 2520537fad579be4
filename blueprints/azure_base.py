"""What every Azure stage is built on: resource group, shared context, logs, vault, models, state.

Composition only - the blocks themselves live in components/azure/. Stages 2 and 3 start from the
same foundation and add to it, so growing from the pilot never rebuilds what is already deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, resources

from blueprints.packages import runtime_package
from blueprints.topology import Topology, stack_tags
from components.azure.context import AzureContext
from components.azure.dashboard import DashboardArgs, ModelPrice, RuntimeBudget
from components.azure.identity import ManagedIdentity
from components.azure.models import ContentFilterArgs, ModelDeploymentArgs, Models, ModelsArgs
from components.azure.naming import Naming, unique_suffix
from components.azure.network import Network
from components.azure.observability import Observability, ObservabilityArgs
from components.azure.search import VectorSearch, VectorSearchArgs
from components.azure.secrets import Secrets, SecretsArgs
from components.azure.serverless_agent import ServerlessAgent, ServerlessAgentArgs
from components.azure.state_store import StateStore, StateStoreArgs
from components.packaging import FUNCTIONS
from core.config import StackConfig


class AzureFoundation:
    """The blocks every Azure stage shares, wired to one context."""

    def __init__(self, config: StackConfig, *, isolated: bool = False) -> None:
        """``isolated``: data services refuse public traffic (reached through private endpoints)."""
        self.config = config
        client = authorization.get_client_config_output()
        group_name = f"rg-{config.name_prefix}-{config.environment}"
        tags = stack_tags(config)
        group = resources.ResourceGroup(
            "resource-group", resource_group_name=group_name, location=config.location, tags=tags
        )
        context = AzureContext(
            resource_group_name=group.name,
            location=config.location,
            naming=Naming(
                config.name_prefix,
                config.environment,
                client.subscription_id.apply(lambda subscription: unique_suffix(subscription, group_name)),
            ),
            subscription_id=client.subscription_id,
            tenant_id=client.tenant_id,
            tags=tags,
            isolated=isolated,
        )
        self.tenant_id = client.tenant_id
        self.observability = Observability(
            "observability",
            context,
            ObservabilityArgs(retention_days=config.log_retention_days, dashboard=dashboard_args(config)),
        )
        self.context = context.with_workspace(self.observability.workspace_id)
        self.secrets = Secrets("secrets", self.context, SecretsArgs())
        self.models = Models(
            "models",
            self.context,
            ModelsArgs(
                deployments=tuple(
                    ModelDeploymentArgs(
                        name=m.name, model=m.model, version=m.version, capacity=m.capacity, sku=m.sku
                    )
                    for m in config.models
                ),
                content_filter=ContentFilterArgs(
                    severity_threshold=config.content_filter.severity_threshold,
                    block_prompt_attacks=config.content_filter.block_prompt_attacks,
                ),
            ),
        )
        self.state = StateStore(
            "state", self.context, StateStoreArgs(embedding_dimensions=config.memory.dimensions)
        )

    def serverless_agent(
        self,
        name: str,
        identity: ManagedIdentity,
        settings: dict[str, pulumi.Input[str]],
        *,
        network: Network | None = None,
    ) -> ServerlessAgent:
        """A Function App running the runtime as ``identity`` with ``settings`` (:meth:`agent_settings`),
        reachable only through ``network`` when the stage has a private one."""
        functions = self.config.functions
        return ServerlessAgent(
            name,
            self.context,
            ServerlessAgentArgs(
                identity=identity,
                package=runtime_package(FUNCTIONS),
                runtime_settings=settings,
                telemetry_connection_string=self.observability.connection_string,
                instance_memory_mb=functions.instance_memory_mb,
                maximum_instance_count=functions.maximum_instance_count,
                always_ready=functions.always_ready,
                zone_redundant=functions.zone_redundant,
                network=network,
            ),
        )

    def grant_shared(self, identity: ManagedIdentity) -> None:
        """What every agent identity needs on the shared blocks: secrets, telemetry, its state and memory."""
        self.secrets.grant_secrets_read(identity)
        self.observability.grant_telemetry_publish(identity)
        self.state.grant_data_access(identity)

    def agent_settings(
        self, topology: Topology, name: str, identity: ManagedIdentity, routes: AzureRoutes | None = None
    ) -> dict[str, pulumi.Input[str]]:
        """Every runtime setting of agent ``name`` on Azure (names of the Settings contract): the neutral
        ones of the topology, and how it reaches the models, its state, the bus and its callers.

        The one place an Azure agent's environment is assembled, for Function Apps and containers alike.
        """
        return {
            **topology.agent_settings(name),
            "llm_provider": "azure_openai",
            "llm_endpoint": self.models.endpoint,
            "llm_auth": "entra",
            "identity_client_id": identity.client_id,
            **self.state.runtime_settings(),
            **self.caller_auth_settings(),
            **(routes.settings() if routes else {}),
        }

    def caller_auth_settings(self) -> dict[str, pulumi.Input[str]]:
        """Callers present Entra ID access tokens for the stack's API audience; roles come from the token.

        Entra ID v2.0 tokens of this tenant: issuer and signing keys are the tenant's, and app roles
        assigned to users or applications arrive in the ``roles`` claim the runtime maps to tool access.
        """
        authority = pulumi.Output.concat("https://login.microsoftonline.com/", self.tenant_id)
        return {
            "auth_mode": "jwt",
            "jwt_issuer": pulumi.Output.concat(authority, "/v2.0"),
            "jwt_audience": self.config.api_audience,
            "jwt_jwks_url": pulumi.Output.concat(authority, "/discovery/v2.0/keys"),
        }


@dataclass(frozen=True)
class AzureRoutes:
    """Where an orchestrated stage's agents reach the models and each other: the API gateway (tokens for
    its audience) and the Service Bus namespace of their task queues."""

    gateway_url: pulumi.Input[str]
    gateway_scope: str
    servicebus_namespace: pulumi.Input[str]

    def settings(self) -> dict[str, pulumi.Input[str]]:
        return {
            "llm_endpoint": self.gateway_url,
            "llm_token_scope": self.gateway_scope,
            "bus_backend": "servicebus",
            "servicebus_namespace": self.servicebus_namespace,
        }


def dashboard_args(config: StackConfig) -> DashboardArgs:
    """The workbook, pricing each deployment the stack file gives a price for, reporting each runtime budget."""
    return DashboardArgs(
        prices=tuple(
            ModelPrice(
                model.name, model.input_price_per_million or 0.0, model.output_price_per_million or 0.0
            )
            for model in config.models
            if model.input_price_per_million is not None or model.output_price_per_million is not None
        ),
        budgets=tuple(
            RuntimeBudget(b.name, b.scope, b.window_seconds, b.tokens, b.requests, b.cost_usd)
            for b in config.runtime_budgets
        ),
    )


def vector_search(base: AzureFoundation) -> VectorSearch | None:
    """The stack's AI Search service, if its file enables one."""
    settings = base.config.vector_search
    if settings is None or not settings.enabled:
        return None
    return VectorSearch(
        "search",
        base.context,
        VectorSearchArgs(sku=settings.sku, replicas=settings.replicas, partitions=settings.partitions),
    )
