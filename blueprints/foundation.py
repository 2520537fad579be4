"""Stage 2 - the orchestrated multi-agent foundation.

Requests enter through the API gateway (Entra ID tokens, token limits, token metrics), which fronts
the orchestrator's Function App. The orchestrator delegates to specialised agents over Service Bus: one
queue per agent; each identity receives from (and re-queues to) its own queue only, and only the
orchestrator may send to the agents' queues. Agents and orchestrator call the models through the gateway's pooled, circuit-broken model
API, so every token is limited and measured in one place; only the gateway's identity holds a role on
Azure OpenAI. Cosmos DB is the shared state store.

AI Search holds the shared knowledge index, which every agent may query and none may write. Documents
are uploaded to the knowledge source's container; Event Grid announces each change on the
``knowledge-ingest`` queue, and the ingestion worker - the same runtime package on a Function App of its
own, running no agent - extracts, chunks and embeds them (through the gateway, like the agents) into the
index. It alone reads the documents and writes the index, and it alone may define the index.

:class:`OrchestratedAgents` is the stage-2 system itself; the enterprise stage builds the same system
with some agents on Kubernetes instead of Function Apps and everything on a private network.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pulumi

from blueprints.azure_base import AzureFoundation, AzureRoutes
from blueprints.azure_names import Named, agent_keys, refuse_shared_names, serverless_runtime
from blueprints.topology import Topology, task_queue
from components.azure.apim_backends import ModelBackendArgs
from components.azure.apim_policies import TokenLimit
from components.azure.gateway import Gateway, GatewayArgs, gateway_url
from components.azure.gateway_policies import CALLER_APP, JwtArgs
from components.azure.identity import ManagedIdentity
from components.azure.knowledge import KnowledgeSource, KnowledgeSourceArgs
from components.azure.messaging import Messaging, MessagingArgs, QueueSpec
from components.azure.network import Network
from components.azure.search import VectorSearch
from components.azure.serverless_agent import ServerlessAgent
from core.config import AgentConfig, OrchestratorConfig, StackConfig
from core.config.stack import BLOCK_NAMES

GATEWAY = "gateway"
INGEST = "ingest"
"""The knowledge ingestion worker: its identity, Function App and host storage are named after it."""
INGEST_QUEUE = "knowledge-ingest"
"""The queue Event Grid delivers document events to and the ingestion worker consumes."""
DOCUMENTS = "documents"


class OrchestratedAgents:
    """The orchestrator and its agents on one foundation: bus, identities, grants, Function Apps, gateway.

    Every agent gets an identity, a queue it alone may receive from, query rights on the knowledge index
    and the runtime settings of :meth:`agent_settings`. Agents named in ``containerized`` get no Function
    App: the caller runs them elsewhere (Kubernetes) with the same identity and settings. The ingestion
    worker always runs on a Function App (:meth:`_ingestion_worker`). With ``network`` the Function Apps
    are reachable only through private endpoints and the gateway reaches them (and the models) through it.
    """

    def __init__(
        self,
        base: AzureFoundation,
        *,
        containerized: Collection[str] = (),
        network: Network | None = None,
    ) -> None:
        config = base.config
        assert config.orchestrator and config.gateway and config.messaging  # guaranteed by StackConfig
        self.base = base
        self.topology = Topology(config)
        self.orchestrator: OrchestratorConfig = config.orchestrator
        self.definitions: dict[str, OrchestratorConfig | AgentConfig] = self.topology.definitions
        search = base.search
        assert search is not None  # guaranteed by StackConfig for these blueprints
        self.search: VectorSearch = search
        self.bus = Messaging(
            "bus",
            base.context,
            MessagingArgs(
                sku=config.messaging.sku,
                # Document events dead-letter like tasks: a document that fails every delivery waits in
                # the ingest queue's dead-letter sub-queue, with the reason, for an operator.
                queues=tuple(
                    QueueSpec(name=queue, max_delivery_count=config.messaging.max_delivery_count)
                    for queue in (*self.topology.queues(), INGEST_QUEUE)
                ),
                # Event Grid delivers through the namespace's firewall where the stage is isolated.
                trusted_services=True,
            ),
        )
        self.identities = {name: ManagedIdentity(name, base.context) for name in self.definitions}
        for name, identity in self.identities.items():
            base.grant_shared(identity)
            search.grant_query(identity)
            # Its own API queues tasks there, and a worker re-sends a message it defers (Service Bus
            # cannot abandon with a delay), so each identity receives from its queue only.
            self.bus.grant_receive(identity, task_queue(name))
        for sender, queue in self.topology.senders():
            self.bus.grant_send(self.identities[sender], queue)
        self.routes = AzureRoutes(
            gateway_url=gateway_url(base.context, GATEWAY),
            gateway_scope=f"{config.api_audience}/.default",
            servicebus_namespace=self.bus.fully_qualified_namespace,
            max_delivery_count=config.messaging.max_delivery_count,
        )
        self.knowledge = KnowledgeSource(
            DOCUMENTS,
            base.context,
            # A stack that spreads its apps over availability zones is in a region that has them.
            KnowledgeSourceArgs(
                bus=self.bus, queue=INGEST_QUEUE, zone_redundant=config.functions.zone_redundant
            ),
        )
        self.ingest_identity = self._ingestion_worker(network)

        self.apps: dict[str, ServerlessAgent] = {
            name: base.serverless_agent(
                name, self.identities[name], self.agent_settings(name), network=network
            )
            for name in self.definitions
            if name not in containerized
        }
        self.gateway = self._gateway(network.subnet_ids["gateway"] if network else None)

    def agent_settings(self, name: str) -> dict[str, pulumi.Input[str]]:
        """Every runtime setting of agent ``name``: the foundation's, through the gateway and the bus."""
        return self.base.agent_settings(self.topology, name, self.identities[name], self.routes)

    def _ingestion_worker(self, network: Network | None) -> ManagedIdentity:
        """The knowledge ingestion worker: its own identity and Function App, fed by the ingest queue.

        Its identity holds exactly: Storage Blob Data Reader on the documents container, Search Index Data
        Contributor and Search Service Contributor on the search service (it writes the index and defines
        it), Azure Service Bus Data Receiver on the ingest queue, and telemetry publishing - no vault,
        no state store, no task queue. It calls the embedding model through the gateway as an allowed
        client application (:meth:`_gateway`), under its own token limit. A background app: documents
        wait in the queue, so it scales to zero when none arrive.
        """
        base = self.base
        identity = ManagedIdentity(INGEST, base.context)
        base.observability.grant_telemetry_publish(identity)
        self.knowledge.grant_read(identity)
        self.search.grant_index_write(identity)
        self.search.grant_index_management(identity)
        self.bus.grant_receive(identity, INGEST_QUEUE)
        settings = base.ingestion_settings(identity, self.routes, self.knowledge, INGEST_QUEUE)
        base.serverless_agent(INGEST, identity, settings, network=network, background=True)
        return identity

    def _gateway(self, subnet_id: pulumi.Input[str] | None) -> Gateway:
        """The front door: JWT validation, token limits and metrics, managed identity to the models."""
        base, gateway = self.base, self.base.config.gateway
        assert gateway is not None
        identity = ManagedIdentity(GATEWAY, base.context)
        base.models.grant_inference(identity)
        base.observability.grant_telemetry_publish(identity)
        agents: Mapping[str, pulumi.Input[str]] = {
            name: app.url for name, app in self.apps.items() if name == self.orchestrator.name
        }
        return Gateway(
            GATEWAY,
            base.context,
            GatewayArgs(
                publisher_name=gateway.publisher_name,
                publisher_email=gateway.publisher_email,
                identity=identity,
                app_insights_id=base.observability.app_insights_id,
                app_insights_connection_string=base.observability.connection_string,
                jwt=JwtArgs(
                    audience=base.config.api_audience,
                    client_application_ids=(
                        *(identity.client_id for identity in self.identities.values()),
                        self.ingest_identity.client_id,
                        *gateway.caller_application_ids,
                    ),
                ),
                models=(ModelBackendArgs(name="models", models=base.models),),
                agents=agents,
                sku=gateway.sku,
                capacity=gateway.capacity,
                token_limit=(
                    None
                    if gateway.sku == "Consumption"
                    else TokenLimit(tokens_per_minute=gateway.tokens_per_minute, counter_key=CALLER_APP)
                ),
                subnet_id=subnet_id,
            ),
        )


def stage_names(
    config: StackConfig, *, containerized: Collection[str] = (), private: bool = False
) -> list[Named]:
    """What :class:`OrchestratedAgents` names after its agents and its own blocks, with the arguments it is
    given: an identity per agent and a Function App per agent not ``containerized``, the ingestion worker's
    identity and app, the gateway's identity and the documents' storage account."""
    named = [
        *serverless_runtime(f"{BLOCK_NAMES[INGEST]} ({INGEST})", INGEST, private=private),
        Named(f"{BLOCK_NAMES[GATEWAY]} ({GATEWAY})", "identity", GATEWAY),
        Named(f"the knowledge documents ({DOCUMENTS})", "storage", DOCUMENTS),
    ]
    for name, key in agent_keys(config).items():
        named += (
            [Named(key, "identity", name)]
            if name in containerized
            else serverless_runtime(key, name, private=private)
        )
    return named


def deploy_azure(config: StackConfig) -> None:
    refuse_shared_names(config, stage_names(config))
    OrchestratedAgents(AzureFoundation(config))
