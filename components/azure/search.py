"""Vector search: an Azure AI Search service holding the stage's shared knowledge index.

API keys are disabled (``disableLocalAuth``; ``authOptions`` must then be absent, the two conflict), so
every query and every write needs an Entra ID token for an identity granted :meth:`VectorSearch.grant_query`,
:meth:`VectorSearch.grant_index_write` or :meth:`VectorSearch.grant_index_management`.

The index itself (:data:`KNOWLEDGE_INDEX`) is no ARM resource: AI Search indexes live in the service's data
plane, and neither ARM nor azure-native can declare one. The runtime's ingestion worker creates or updates
its definition when it starts (``knowledge_manage_index``), from the same code that writes and queries it,
so the fields, vector dimensions and vector profile can never disagree with the runtime that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, search

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity
from components.azure.private_link import PrivateLinkTarget
from components.azure.roles import assign_role
from components.base import Component

PARTITION_COUNTS = (1, 2, 3, 4, 6, 12)
KNOWLEDGE_INDEX = "knowledge"
"""The index every runtime of the stage searches and the ingestion worker writes (``knowledge_index``)."""


@dataclass(frozen=True)
class VectorSearchArgs:
    """Size of the service.

    ``sku`` (default ``basic``): the smallest dedicated tier (``free`` is shared and has no SLA);
    ``standard`` and up allow more partitions and larger vector indexes.
    ``replicas`` (default 1): query throughput and availability - 2 give a read SLA, 3 a read-write SLA.
    ``partitions`` (default 1): index storage and indexing throughput.
    ``semantic_search`` (default ``disabled``): the semantic reranker is a separately billed feature
    that vector retrieval does not need; ``free`` or ``standard`` turn it on.
    """

    sku: str = "basic"
    replicas: int = 1
    partitions: int = 1
    semantic_search: str = "disabled"

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 12:
            raise ValueError(f"replicas must be between 1 and 12, got {self.replicas}")
        if self.partitions not in PARTITION_COUNTS:
            raise ValueError(f"partitions must be one of {PARTITION_COUNTS}, got {self.partitions}")


class VectorSearch(Component):
    """An Azure AI Search service with key auth off (``agentstage:azure:VectorSearch``).

    Public network access is off when ``context.isolated``: the service is then reached through its
    private endpoint (``private_link_targets``) only. No system identity: the service pulls from no data
    source (no indexer); the ingestion worker pushes documents with its own identity.

    Outputs: ``service_id``, ``service_name`` and ``endpoint`` (``https://<name>.search.windows.net``).
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: VectorSearchArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "VectorSearch", name, opts)
        self._name = name
        self._context = context
        service_name = context.naming.name("search", name)
        service = search.Service(
            f"{name}-service",
            search_service_name=service_name,
            resource_group_name=context.resource_group_name,
            location=context.location,
            sku=search.SkuArgs(name=args.sku),
            replica_count=args.replicas,
            partition_count=args.partitions,
            semantic_search=args.semantic_search,
            disable_local_auth=True,
            public_network_access=context.public_network_access,
            tags=dict(context.tags),
            opts=self.child(),
        )
        send_diagnostics(f"{name}-service", context=context, resource_id=service.id, parent=self)
        self.service_id: pulumi.Output[str] = service.id
        self.service_name: pulumi.Output[str] = service_name
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            PrivateLinkTarget(name, service.id, "searchService", "privatelink.search.windows.net"),
        )
        # Derived from the name (public-cloud DNS) so it is known before deployment and in offline plans.
        self.endpoint: pulumi.Output[str] = pulumi.Output.concat(
            "https://", service_name, ".search.windows.net"
        )
        self.register_outputs(
            {"service_id": self.service_id, "service_name": self.service_name, "endpoint": self.endpoint}
        )

    def runtime_settings(self) -> dict[str, pulumi.Input[str]]:
        """Where a runtime finds the knowledge index (names of the runtime's Settings contract)."""
        return {
            "knowledge_backend": "aisearch",
            "search_endpoint": self.endpoint,
            "knowledge_index": KNOWLEDGE_INDEX,
        }

    def grant_query(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` search: **Search Index Data Reader** on this service (read every index's documents)."""
        return self._grant("query", "Search Index Data Reader", identity)

    def grant_index_write(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` load documents: **Search Index Data Contributor** on this service.

        Reads, adds, updates and deletes documents in every index; it cannot create or delete indexes
        (that is :meth:`grant_index_management`). For the ingestion worker, never for an agent: an agent
        steered by a prompt injection could otherwise rewrite what every other agent reads.
        """
        return self._grant("index-write", "Search Index Data Contributor", identity)

    def grant_index_management(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` create and update index definitions: **Search Service Contributor** here.

        The narrowest built-in role that may PUT an index: the Search Index Data roles only read and write
        documents, and the other built-in roles with index rights, Owner and Contributor, also grant
        access to others or reach every resource in scope (agentstage refuses both). Search Service
        Contributor still carries the control plane of this one service
        (``Microsoft.Search/searchServices/*``: scaling, network rules, keys, deletion), which is why the
        ingestion worker alone holds it - scoped to the service, with the keys opening nothing while local
        auth is off. No built-in role is limited to
        index definitions; a custom one (``Microsoft.Search/searchServices/indexes/*``) would need a deployer
        that may create role definitions, which Contributor + Role Based Access Control Administrator - the
        documented deployer - may not.
        """
        return self._grant("index-management", "Search Service Contributor", identity)

    def _grant(self, purpose: str, role: str, identity: ManagedIdentity) -> authorization.RoleAssignment:
        return assign_role(
            f"{self._name}-{purpose}-{identity.label}",
            context=self._context,
            scope=self.service_id,
            role=role,
            identity=identity,
            parent=self,
        )
