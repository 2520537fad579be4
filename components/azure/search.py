"""Vector search: an Azure AI Search service for agent memory and retrieval.

API keys are disabled (``disableLocalAuth``; ``authOptions`` must then be absent, the two conflict), so
every query and every write needs an Entra ID token for an identity granted :meth:`VectorSearch.grant_query`
or :meth:`VectorSearch.grant_index_write`.
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
    private endpoint (``private_link_targets``) only. No system identity:
    the service pulls from no data source; agents push documents with their own identity.

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

    def grant_query(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` search: **Search Index Data Reader** on this service (read every index's documents)."""
        return self._grant("query", "Search Index Data Reader", identity)

    def grant_index_write(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` load documents: **Search Index Data Contributor** on this service.

        Reads, adds, updates and deletes documents in every index; it cannot create or delete indexes
        (that is the control plane's Search Service Contributor, deliberately not granted to agents).
        """
        return self._grant("index-write", "Search Index Data Contributor", identity)

    def _grant(self, purpose: str, role: str, identity: ManagedIdentity) -> authorization.RoleAssignment:
        return assign_role(
            f"{self._name}-{purpose}-{identity.label}",
            context=self._context,
            scope=self.service_id,
            role=role,
            identity=identity,
            parent=self,
        )
