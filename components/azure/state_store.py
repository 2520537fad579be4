"""State store: Azure Cosmos DB for NoSQL holding the runtime's conversations and long-term vector memory.

Keeping state here is what lets the serverless agent stay stateless: any Function App instance can
serve any turn. Keys are disabled (``disableLocalAuth``), so agents reach the data plane only with an
Entra ID token for an identity granted :meth:`StateStore.grant_data_access`. That data-plane role cannot
create databases or containers, so this component creates them through ARM with the exact layout the
runtime's Cosmos adapter expects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import cosmosdb

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity
from components.azure.private_link import PrivateLinkTarget
from components.azure.role_ids import COSMOS_DATA_ROLES
from components.base import Component

DATA_CONTRIBUTOR = COSMOS_DATA_ROLES["Cosmos DB Built-in Data Contributor"]
EMBEDDING_PATH = "/embedding"
MAX_VECTOR_DIMENSIONS = 4096  # quantizedFlat and diskANN indexes (flat stops at 505)


@dataclass(frozen=True)
class StateStoreArgs:
    """Capacity, backup and layout of the store.

    ``embedding_dimensions`` (required): must match the embedding model; a container's vector policy
    cannot change after creation. ``serverless`` (default ``True``): billed per request, suits bursty pilot
    traffic; ``False`` gives *each container* autoscale throughput up to ``max_throughput`` RU/s (default
    1000, the minimum; steps of 1000) - not the database, because vector search does not support shared
    throughput. ``continuous_backup`` (default ``True``): 7-day point-in-time restore at no storage charge,
    instead of 4-hourly periodic snapshots restored only through a support ticket. ``zone_redundant``
    (default ``False``): replicas across availability zones, where the region offers them.
    """

    embedding_dimensions: int
    serverless: bool = True
    max_throughput: int = 1000
    database_name: str = "agentstage"
    conversations_container: str = "conversations-by-owner"
    memories_container: str = "memories"
    tasks_container: str | None = "tasks"
    ledger_container: str = "ledger"
    continuous_backup: bool = True
    zone_redundant: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.embedding_dimensions <= MAX_VECTOR_DIMENSIONS:
            raise ValueError(
                f"embedding_dimensions must be 1-{MAX_VECTOR_DIMENSIONS}, got {self.embedding_dimensions}"
            )
        if self.max_throughput < 1000 or self.max_throughput % 1000:
            raise ValueError(
                f"max_throughput must be a multiple of 1000 RU/s from 1000, got {self.max_throughput}"
            )


class StateStore(Component):
    """A Cosmos DB for NoSQL account with local auth off (``agentstage:azure:StateStore``).

    Public network access is off when ``context.isolated``: the account is then reached through its
    private endpoint for the NoSQL API (``private_link_targets``) only. Outputs:
    ``account_id``, ``account_name``, ``endpoint`` (``https://<name>.documents.azure.com:443/``),
    ``database_name`` (resolves once every container exists), ``conversations_container``, ``memories_container``,
    ``tasks_container``, ``ledger_container``.
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: StateStoreArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "StateStore", name, opts)
        self._name, self._context, self._args = name, context, args
        capabilities = (["EnableServerless"] if args.serverless else []) + ["EnableNoSQLVectorSearch"]
        backup = (
            cosmosdb.ContinuousModeBackupPolicyArgs(
                type="Continuous",
                continuous_mode_properties=cosmosdb.ContinuousModePropertiesArgs(tier="Continuous7Days"),
            )
            if args.continuous_backup
            else cosmosdb.PeriodicModeBackupPolicyArgs(type="Periodic")
        )
        account = cosmosdb.DatabaseAccount(
            f"{name}-account",
            account_name=context.naming.name("cosmos", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            kind=cosmosdb.DatabaseAccountKind.GLOBAL_DOCUMENT_DB,
            database_account_offer_type=cosmosdb.DatabaseAccountOfferType.STANDARD,
            locations=[
                cosmosdb.LocationArgs(
                    location_name=context.location, failover_priority=0, is_zone_redundant=args.zone_redundant
                )
            ],
            consistency_policy=cosmosdb.ConsistencyPolicyArgs(
                default_consistency_level=cosmosdb.DefaultConsistencyLevel.SESSION
            ),
            capabilities=[cosmosdb.CapabilityArgs(name=capability) for capability in capabilities],
            backup_policy=backup,
            # Single-region writes, stated rather than defaulted: multi-region writes change the
            # consistency guarantees the conversation store's append protocol relies on.
            enable_multiple_write_locations=False,
            disable_local_auth=True,
            disable_key_based_metadata_write_access=True,
            minimal_tls_version=cosmosdb.MinimalTlsVersion.TLS12,
            public_network_access=context.public_network_access,
            tags=dict(context.tags),
            opts=self.child(),
        )
        send_diagnostics(f"{name}-account", context=context, resource_id=account.id, parent=self)
        self.account_id: pulumi.Output[str] = account.id
        self.account_name: pulumi.Output[str] = account.name
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            PrivateLinkTarget(name, account.id, "Sql", "privatelink.documents.azure.com"),
        )
        self.endpoint: pulumi.Output[str] = pulumi.Output.concat(
            "https://", account.name, ".documents.azure.com:443/"
        )
        self._database = cosmosdb.SqlResourceSqlDatabase(
            f"{name}-database",
            account_name=self.account_name,
            resource_group_name=context.resource_group_name,
            database_name=args.database_name,
            resource=cosmosdb.SqlDatabaseResourceArgs(id=args.database_name),
            tags=dict(context.tags),
            opts=self.child(),
        )
        # Each conversation is a logical partition inside its caller's, inside its tenant's (the runtime's
        # CONVERSATION_PARTITION_KEY): an owner's or a tenant's conversations are one prefix query away.
        conversations = self._container(
            "conversations", args.conversations_container, ["/tenant", "/caller", "/conversationId"]
        )
        memories = self._container("memories", args.memories_container, ["/namespace"], vectors=True)
        # Task records and idempotency claims are read by id (the runtime's TASKS_PARTITION_KEY); a stage
        # with no task worker (the pilot) has no task records, so no container.
        tasks = self._container("tasks", args.tasks_container, ["/id"]) if args.tasks_container else None
        # The stage's one budget ledger and tool-call idempotency records, shared by every app (the
        # runtime's LEDGER_PARTITION_KEY); documents expire with their per-item TTL.
        ledger = self._container("ledger", args.ledger_container, ["/partition"], expiring=True)
        # Depends on every container, so an app configured with it starts only once they exist.
        containers = [conversations, memories, *([tasks] if tasks else []), ledger]
        self.database_name: pulumi.Output[str] = pulumi.Output.all(
            *(container.id for container in containers)
        ).apply(lambda _: args.database_name)
        self.conversations_container, self.memories_container = (
            args.conversations_container,
            args.memories_container,
        )
        self.tasks_container = args.tasks_container
        self.ledger_container = args.ledger_container
        self.register_outputs(
            {
                "account_id": self.account_id,
                "account_name": self.account_name,
                "endpoint": self.endpoint,
                "database_name": self.database_name,
                "conversations_container": self.conversations_container,
                "memories_container": self.memories_container,
                "tasks_container": self.tasks_container or "",
                "ledger_container": self.ledger_container,
            }
        )

    def _container(
        self,
        purpose: str,
        container: str,
        partition_key: list[str],
        *,
        vectors: bool = False,
        expiring: bool = False,
    ) -> cosmosdb.SqlResourceSqlContainer:
        """A container hash-partitioned on ``partition_key`` (v2: keys up to 2 KB; several paths make a
        hierarchical key), with no default TTL; ``expiring`` turns TTL on (``-1``: items expire by their own
        ``ttl``, none by default). Retained on delete: renaming or replacing a container in
        code must never destroy the data in it (the account's own deletion still removes it).

        With ``vectors``: cosine over float32 ``/embedding``, indexed ``quantizedFlat`` - an exact scan of
        compressed vectors, recommended up to ~50k vectors per search. Every runtime query is scoped to one
        namespace (the partition key), so it keeps near-exact recall where ``diskANN`` would trade recall
        for scale this store does not need. The vector path stays out of the range index (write RUs only).
        """
        args = self._args
        vector_policy = cosmosdb.VectorEmbeddingPolicyArgs(
            vector_embeddings=[
                cosmosdb.VectorEmbeddingArgs(
                    path=EMBEDDING_PATH,
                    data_type=cosmosdb.VectorDataType.FLOAT32,
                    dimensions=args.embedding_dimensions,
                    distance_function=cosmosdb.DistanceFunction.COSINE,
                )
            ]
        )
        vector_index = cosmosdb.IndexingPolicyArgs(
            indexing_mode=cosmosdb.IndexingMode.CONSISTENT,
            automatic=True,
            included_paths=[cosmosdb.IncludedPathArgs(path="/*")],
            excluded_paths=[cosmosdb.ExcludedPathArgs(path=f"{EMBEDDING_PATH}/*")],
            vector_indexes=[
                cosmosdb.VectorIndexArgs(path=EMBEDDING_PATH, type=cosmosdb.VectorIndexType.QUANTIZED_FLAT)
            ],
        )
        # Serverless accounts reject any throughput setting.
        autoscale = cosmosdb.CreateUpdateOptionsArgs(
            autoscale_settings=cosmosdb.AutoscaleSettingsArgs(max_throughput=args.max_throughput)
        )
        return cosmosdb.SqlResourceSqlContainer(
            f"{self._name}-{purpose}",
            account_name=self.account_name,
            resource_group_name=self._context.resource_group_name,
            database_name=args.database_name,
            container_name=container,
            resource=cosmosdb.SqlContainerResourceArgs(
                id=container,
                partition_key=cosmosdb.ContainerPartitionKeyArgs(
                    paths=partition_key, kind="MultiHash" if len(partition_key) > 1 else "Hash", version=2
                ),
                default_ttl=-1 if expiring else None,
                vector_embedding_policy=vector_policy if vectors else None,
                indexing_policy=vector_index if vectors else None,
            ),
            options=None if args.serverless else autoscale,
            tags=dict(self._context.tags),
            opts=self.child(depends_on=[self._database], retain_on_delete=True),
        )

    def grant_data_access(self, identity: ManagedIdentity) -> cosmosdb.SqlResourceSqlRoleAssignment:
        """Let ``identity`` use the store: **Cosmos DB Built-in Data Contributor** on this database only.

        Reads, writes and queries items in the database's containers, and reads account metadata; no other
        database, no control plane. Cosmos data-plane roles live in the account, not in Azure RBAC, so
        this is a ``sqlRoleAssignment`` and not :func:`components.azure.roles.assign_role`. Its name must be
        a GUID: a uuid5 of the component and identity names keeps it the same on every run.
        """
        guid = uuid.uuid5(uuid.NAMESPACE_URL, f"agentstage:azure:StateStore/{self._name}/{identity.label}")
        return cosmosdb.SqlResourceSqlRoleAssignment(
            f"{self._name}-data-{identity.label}",
            account_name=self.account_name,
            resource_group_name=self._context.resource_group_name,
            role_assignment_id=str(guid),
            role_definition_id=pulumi.Output.concat(
                self.account_id, "/sqlRoleDefinitions/", DATA_CONTRIBUTOR
            ),
            scope=pulumi.Output.concat(self.account_id, "/dbs/", self._args.database_name),
            principal_id=identity.principal_id,
            opts=self.child(depends_on=[self._database]),
        )

    def runtime_settings(self) -> dict[str, pulumi.Input[str]]:
        """Runtime settings (fields of ``agent_runtime.settings.Settings``) that point the runtime here."""
        return {
            "state_backend": "cosmos",
            "vector_backend": "cosmos",
            "cosmos_endpoint": self.endpoint,
            "cosmos_database": self.database_name,
            "cosmos_conversations_container": self.conversations_container,
            "cosmos_memories_container": self.memories_container,
            **({"cosmos_tasks_container": self.tasks_container} if self.tasks_container else {}),
            "budget_backend": "cosmos",
            "cosmos_ledger_container": self.ledger_container,
        }
