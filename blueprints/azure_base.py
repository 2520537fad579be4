"""What every Azure stage is built on: resource group, shared context, logs, vault, models, state.

Composition only - the blocks themselves live in components/azure/. Stages 2 and 3 start from the
same foundation and add to it, so growing from the pilot never rebuilds what is already deployed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pulumi
from pulumi_azure_native import authorization, resources
from pydantic import BaseModel

from blueprints.config import StackConfig
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
from components.packaging import Package, build_function_package, vendoring_needed

PROJECT_DIR = Path(__file__).resolve().parent.parent


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
        agents: str,
        extra_settings: dict[str, pulumi.Input[str]] | None = None,
        *,
        network: Network | None = None,
    ) -> ServerlessAgent:
        """A Function App running the runtime as ``identity`` for ``agents`` (AGENTSTAGE_AGENTS JSON),
        reachable only through ``network`` when the stage has a private one."""
        functions = self.config.functions
        return ServerlessAgent(
            name,
            self.context,
            ServerlessAgentArgs(
                identity=identity,
                package=runtime_package(),
                runtime_settings={
                    **self.runtime_settings(identity),
                    "agents": agents,
                    **(extra_settings or {}),
                },
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

    def runtime_settings(self, identity: ManagedIdentity) -> dict[str, pulumi.Input[str]]:
        """The runtime settings every agent on this foundation shares (names of the Settings contract)."""
        config = self.config
        return {
            "environment": config.environment,
            "llm_provider": "azure_openai",
            "llm_endpoint": self.models.endpoint,
            "llm_auth": "entra",
            "identity_client_id": identity.client_id,
            "embedding_model": config.memory.embedding_deployment,
            "embedding_dimensions": str(config.memory.dimensions),
            "model_prices": model_prices_json(config),
            **runtime_budgets(config),
            **self.state.runtime_settings(),
            **self.caller_auth_settings(),
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


def model_prices_json(config: StackConfig) -> str:
    """The stack file's model prices in the runtime's AGENTSTAGE_MODEL_PRICES shape (cost budgets)."""
    return json.dumps(
        {
            model.name: {
                "input": model.input_price_per_million or 0.0,
                "output": model.output_price_per_million or 0.0,
            }
            for model in config.models
            if model.input_price_per_million is not None or model.output_price_per_million is not None
        },
        separators=(",", ":"),
    )


def runtime_budgets(config: StackConfig) -> dict[str, str]:
    """AGENTSTAGE_BUDGETS from the stack's runtime budgets (nothing when it declares none)."""
    if not config.runtime_budgets:
        return {}
    rules = [rule.model_dump(mode="json", exclude_none=True) for rule in config.runtime_budgets]
    return {"budgets": json.dumps(rules, separators=(",", ":"))}


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


def stack_tags(config: StackConfig) -> dict[str, str]:
    """The stack's tags plus the ones agentstage always sets (user tags cannot override them)."""
    return {
        **config.tags,
        "agentstage-blueprint": config.blueprint,
        "agentstage-environment": config.environment,
        "managed-by": "pulumi",
    }


def agents_json(agents: Iterable[BaseModel]) -> str:
    """Agent definitions in the runtime's AGENTSTAGE_AGENTS shape (snake_case field names)."""
    return json.dumps(
        [agent.model_dump(mode="json", exclude_none=True) for agent in agents], separators=(",", ":")
    )


def runtime_package() -> Package:
    """The runtime's deployment package: lean under the offline plan, vendored for a real engine."""
    return build_function_package(
        PROJECT_DIR / "runtime", PROJECT_DIR / "build", vendor_dependencies=vendoring_needed()
    )
