"""What every Azure stage is built on: resource group, shared context, logs, vault, models, state and,
where the stack file enables it, AI Search holding the knowledge index.

Composition only - the blocks themselves live in components/azure/. Stages 2 and 3 start from the
same foundation and add to it, so growing from the pilot never rebuilds what is already deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, resources

from blueprints.packages import runtime_package
from blueprints.topology import Topology, agents_json, stack_tags
from components.azure.context import AzureContext
from components.azure.dashboard import DashboardArgs, ModelPrice, RuntimeBudget
from components.azure.identity import ManagedIdentity
from components.azure.knowledge import KnowledgeSource
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
            "state",
            self.context,
            StateStoreArgs(
                embedding_dimensions=config.memory.dimensions,
                # Only stages whose agents have task queues run tasks (Topology.queued): no container else.
                **({} if Topology(config).queued else {"tasks_container": None}),
            ),
        )
        self.search: VectorSearch | None = _vector_search(config, self.context)

    def serverless_agent(
        self,
        name: str,
        identity: ManagedIdentity,
        settings: dict[str, pulumi.Input[str]],
        *,
        network: Network | None = None,
        background: bool = False,
    ) -> ServerlessAgent:
        """A Function App running the runtime as ``identity`` with ``settings`` (:meth:`agent_settings`),
        reachable only through ``network`` when the stage has a private one.

        It is sized by the stack's ``functions`` section, except that a ``background`` app (one that only
        works off a durable queue, like the ingestion worker) keeps no instance warm and is not zone
        redundant: nobody waits on it, its messages wait in the queue through a cold start or a zone
        outage, and it costs nothing while idle - a zone-redundant app keeps two instances per trigger.
        """
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
                always_ready=0 if background else functions.always_ready,
                zone_redundant=functions.zone_redundant and not background,
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
        ones of the topology, and how it reaches the models, its state, the knowledge index, the bus and
        its callers.

        The one place an Azure agent's environment is assembled, for Function Apps and containers alike.
        """
        return {
            **topology.agent_settings(name),
            **self._model_settings(identity),
            **self.state.runtime_settings(),
            **self.knowledge_settings(),
            **self.caller_auth_settings(),
            **(routes.settings() if routes else {}),
        }

    def ingestion_settings(
        self, identity: ManagedIdentity, routes: AzureRoutes, source: KnowledgeSource, queue: str
    ) -> dict[str, pulumi.Input[str]]:
        """Every runtime setting of the knowledge ingestion worker: the runtime package, consuming the
        document events of ``queue`` into the index from ``source``.

        It is no agent, so the topology has nothing to say about it: it runs none (``agents`` is a setting
        every cloud deployment must give; its API, which the Function host serves anyway, lists no agent),
        takes no tasks, and keeps no conversations or budget ledger (no state store, no Cosmos DB role).
        It embeds chunks with the agents' embedding deployment, through the same models route, and is the
        one runtime that creates the index definition (``knowledge_manage_index``).
        """
        config = self.config
        assert self.search is not None  # the ingestion worker is only deployed beside AI Search
        return {
            "environment": config.environment,
            "agents": agents_json([]),
            "embedding_model": config.memory.embedding_deployment,
            "embedding_dimensions": str(config.memory.dimensions),
            "tasks_enabled": "false",
            **self._model_settings(identity),
            **self.search.runtime_settings(),
            "knowledge_manage_index": "true",
            "knowledge_source": source.source_url,
            "ingest_queue": queue,
            **self.caller_auth_settings(),
            **routes.settings(),
        }

    def knowledge_settings(self) -> dict[str, pulumi.Input[str]]:
        """Where the runtime searches the stage's knowledge index: AI Search where the stack has it.

        Without it there is no shared index to search: the runtime's embedded one would sit on one
        instance's temporary disk, empty and gone on scale-in, so knowledge is off (``none``) and the
        ``knowledge_search`` tool says so instead of answering from nothing.
        """
        return self.search.runtime_settings() if self.search is not None else {"knowledge_backend": "none"}

    def _model_settings(self, identity: ManagedIdentity) -> dict[str, pulumi.Input[str]]:
        """How a runtime running as ``identity`` calls the models: Azure OpenAI with Entra ID tokens (an
        orchestrated stage's routes point it at the gateway instead)."""
        return {
            "llm_provider": "azure_openai",
            "llm_endpoint": self.models.endpoint,
            "llm_auth": "entra",
            "identity_client_id": identity.client_id,
        }

    def caller_auth_settings(self) -> dict[str, pulumi.Input[str]]:
        """Callers present Entra ID access tokens for the stack's API audience; roles come from the token.

        Entra ID v2.0 tokens of this tenant: issuer and signing keys are the tenant's, and app roles
        assigned to users or applications arrive in the ``roles`` claim the runtime maps to tool access.
        Every caller's tenant (the ``tid`` claim) is therefore this one, and it is the platform's: its
        reviewers and operators act on the stage's tasks and conversations, and its roles read the knowledge
        index's restricted documents (the runtime counts a role only within the tenant that granted it, or
        for every tenant when that is the platform's).
        """
        authority = pulumi.Output.concat("https://login.microsoftonline.com/", self.tenant_id)
        return {
            "auth_mode": "jwt",
            "jwt_issuer": pulumi.Output.concat(authority, "/v2.0"),
            "jwt_audience": self.config.api_audience,
            "jwt_jwks_url": pulumi.Output.concat(authority, "/discovery/v2.0/keys"),
            "platform_tenant": self.tenant_id,
        }


@dataclass(frozen=True)
class AzureRoutes:
    """Where an orchestrated stage's agents reach the models and each other: the API gateway (tokens for
    its audience) and the Service Bus namespace of their task queues."""

    gateway_url: pulumi.Input[str]
    gateway_scope: str
    servicebus_namespace: pulumi.Input[str]
    max_delivery_count: int
    """The queues' ``MaxDeliveryCount``: a worker acts on the last delivery it will see, so it must know it."""

    def settings(self) -> dict[str, pulumi.Input[str]]:
        return {
            "llm_endpoint": self.gateway_url,
            "llm_token_scope": self.gateway_scope,
            "bus_backend": "servicebus",
            "servicebus_namespace": self.servicebus_namespace,
            "bus_max_delivery_count": str(self.max_delivery_count),
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


def _vector_search(config: StackConfig, context: AzureContext) -> VectorSearch | None:
    """The stack's AI Search service, if its file enables one."""
    settings = config.vector_search
    if settings is None or not settings.enabled:
        return None
    return VectorSearch(
        "search",
        context,
        VectorSearchArgs(sku=settings.sku, replicas=settings.replicas, partitions=settings.partitions),
    )
