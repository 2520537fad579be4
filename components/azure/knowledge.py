"""The knowledge source: the documents the knowledge index is built from, and the events that announce
each change to them.

**Documents** are blobs in the ``documents`` container of a storage account of their own. Each names the
callers who may read it in its ``readers`` metadata (a document without readers is skipped by the
ingestion worker, never indexed readable by everyone). Uploads come from people and pipelines outside the
stack, granted Storage Blob Data Contributor on the container by whoever runs the estate.

Why an account of its own rather than a container on one that exists: the only other accounts are the
Function Apps' host storage, each owned by its app's identity (Storage Blob Data Owner on the whole
account, as the Functions host requires), so documents there would be writable by that agent and lost with
its app. Here nothing but the uploaders writes documents, the ingestion worker reads one container only,
and versioning and soft delete keep every overwritten or deleted document recoverable.

**Events.** Storage publishes BlobCreated and BlobDeleted to an Event Grid system topic on the account. One
event subscription, filtered to the documents container, delivers them in the Event Grid schema to a
Service Bus queue, authenticated as the topic's system-assigned identity (Azure Service Bus Data Sender on
that queue only: no key, no webhook, nothing public to call). The queue holds each event until the
ingestion worker has taken it; its maximum delivery count moves a document that keeps failing to the
queue's dead-letter sub-queue. An event Event Grid cannot deliver at all, after its retries (queue deleted,
role removed), is written as a blob to the account's ``undelivered-events`` container by the same identity
(Storage Blob Data Contributor on that container only) instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, eventgrid, storage

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity, SystemIdentity
from components.azure.messaging import Messaging
from components.azure.private_link import PrivateLinkTarget
from components.azure.roles import assign_role
from components.azure.storage_account import secure_storage_account
from components.base import Component

DOCUMENTS_CONTAINER = "documents"
UNDELIVERED_CONTAINER = "undelivered-events"
DOCUMENT_EVENTS = ("Microsoft.Storage.BlobCreated", "Microsoft.Storage.BlobDeleted")
"""A document appeared, changed (an overwrite is a new BlobCreated) or went away: all the worker acts on."""
MAX_DELIVERY_ATTEMPTS = 30
EVENT_TTL_MINUTES = 1440
"""Event Grid retries delivery with backoff for up to 30 attempts or a day, whichever ends first, so an
outage of the queue shorter than a day loses nothing; then the event goes to ``undelivered-events``."""


@dataclass(frozen=True)
class KnowledgeSourceArgs:
    """Where document events go, and how long deleted documents stay recoverable.

    - ``bus`` and ``queue``: the Service Bus namespace and the queue (one of ``bus``'s) the ingestion
      worker consumes.
    - ``retention_days`` (default 30, 1-365): how long a deleted document, an overwritten version and a
      deleted container can still be restored (blob and container soft delete; versioning keeps every
      version until then).
    - ``zone_redundant`` (default off): keep the documents in three availability zones (ZRS) instead of
      one datacentre (LRS); only in regions with zones.
    """

    bus: Messaging
    queue: str
    retention_days: int = 30
    zone_redundant: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.retention_days <= 365:
            raise ValueError(f"retention_days must be between 1 and 365, got {self.retention_days}")
        if self.queue not in self.bus.queue_ids:
            known = ", ".join(self.bus.queue_ids) or "none"
            raise KeyError(f"the bus has no queue named '{self.queue}'; known: {known}")


class KnowledgeSource(Component):
    """The documents container and its change events (``agentstage:azure:KnowledgeSource``).

    Isolated stages: the account refuses public network access and is reached through its blob private
    endpoint (``private_link_targets``). Event Grid needs no network path to publish (the storage service
    emits the events itself) and reaches the queue as a trusted service (``MessagingArgs.trusted_services``).
    Dead-lettering is the one write Event Grid makes to the account: Azure documents that trusted-service
    path for accounts whose firewall denies by default (kept: ``bypass: AzureServices``), not for accounts
    with public network access off, so an isolated stage's first deployment must show that Event Grid
    accepts the ``undelivered-events`` destination.

    Outputs: ``account_id``, ``account_name``, ``source_url`` (the documents container's URL, what the
    runtime's ``knowledge_source`` names) and ``system_topic_id``.
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: KnowledgeSourceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "KnowledgeSource", name, opts)
        self._name, self._context = name, context
        account = secure_storage_account(
            f"{name}-account",
            context=context,
            purpose=name,
            parent=self,
            sku=storage.SkuName.STANDARD_ZRS if args.zone_redundant else storage.SkuName.STANDARD_LRS,
        )
        retention = storage.DeleteRetentionPolicyArgs(enabled=True, days=args.retention_days)
        storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=account.name,
            blob_services_name="default",
            resource_group_name=context.resource_group_name,
            is_versioning_enabled=True,
            delete_retention_policy=retention,
            container_delete_retention_policy=retention,
            opts=self.child(),
        )
        self._documents = self._container(f"{name}-container", account, DOCUMENTS_CONTAINER)
        undelivered = self._container(f"{name}-undelivered-container", account, UNDELIVERED_CONTAINER)
        topic = eventgrid.SystemTopic(
            f"{name}-events",
            system_topic_name=context.naming.name("event_grid_system_topic", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            source=account.id,
            topic_type="Microsoft.Storage.StorageAccounts",
            identity=eventgrid.IdentityInfoArgs(type=eventgrid.IdentityType.SYSTEM_ASSIGNED),
            tags=dict(context.tags),
            opts=self.child(),
        )
        send_diagnostics(f"{name}-events", context=context, resource_id=topic.id, parent=self)
        # The topic's principal exists once Azure has created the topic (unknown in a first preview).
        principal_id: pulumi.Output[str] = topic.identity.apply(  # type: ignore[arg-type]
            lambda identity: identity.principal_id if identity else None  # type: ignore[return-value]
        )
        topic_identity = SystemIdentity(f"{name}-events", principal_id)
        delivery = args.bus.grant_send(topic_identity, args.queue)
        dead_letter = assign_role(
            f"{name}-undelivered-write-{topic_identity.label}",
            context=context,
            scope=undelivered.id,
            role="Storage Blob Data Contributor",
            identity=topic_identity,
            parent=self,
        )
        eventgrid.SystemTopicEventSubscription(
            f"{name}-events-to-{args.queue}",
            system_topic_name=topic.name,
            event_subscription_name=f"to-{args.queue}",
            resource_group_name=context.resource_group_name,
            filter=eventgrid.EventSubscriptionFilterArgs(
                included_event_types=list(DOCUMENT_EVENTS),
                subject_begins_with=f"/blobServices/default/containers/{DOCUMENTS_CONTAINER}/",
            ),
            event_delivery_schema=eventgrid.EventDeliverySchema.EVENT_GRID_SCHEMA,
            delivery_with_resource_identity=eventgrid.DeliveryWithResourceIdentityArgs(
                identity=_as_the_topic(),
                destination=eventgrid.ServiceBusQueueEventSubscriptionDestinationArgs(
                    endpoint_type="ServiceBusQueue", resource_id=args.bus.queue_ids[args.queue]
                ),
            ),
            retry_policy=eventgrid.RetryPolicyArgs(
                max_delivery_attempts=MAX_DELIVERY_ATTEMPTS, event_time_to_live_in_minutes=EVENT_TTL_MINUTES
            ),
            dead_letter_with_resource_identity=eventgrid.DeadLetterWithResourceIdentityArgs(
                identity=_as_the_topic(),
                dead_letter_destination=eventgrid.StorageBlobDeadLetterDestinationArgs(
                    endpoint_type="StorageBlob",
                    resource_id=account.id,
                    blob_container_name=UNDELIVERED_CONTAINER,
                ),
            ),
            # Event Grid checks that its identity may reach both destinations when the subscription is
            # created, through the namespace's firewall (trusted services) where there is one.
            opts=self.child(depends_on=[delivery, dead_letter, *filter(None, [args.bus.network_rules])]),
        )

        self.account_id: pulumi.Output[str] = account.id
        self.account_name: pulumi.Output[str] = account.name
        self.system_topic_id: pulumi.Output[str] = topic.id
        # Derived from the name (public-cloud DNS) so it is known before deployment and in offline plans.
        self.source_url: pulumi.Output[str] = pulumi.Output.concat(
            "https://", account.name, ".blob.core.windows.net/", DOCUMENTS_CONTAINER
        )
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            PrivateLinkTarget(name, account.id, "blob", "privatelink.blob.core.windows.net"),
        )
        self.register_outputs(
            {
                "account_id": self.account_id,
                "account_name": self.account_name,
                "source_url": self.source_url,
                "system_topic_id": self.system_topic_id,
            }
        )

    def _container(
        self, resource_name: str, account: storage.StorageAccount, container: str
    ) -> storage.BlobContainer:
        return storage.BlobContainer(
            resource_name,
            account_name=account.name,
            container_name=container,
            resource_group_name=self._context.resource_group_name,
            public_access=storage.PublicAccess.NONE,
            opts=self.child(),
        )

    def grant_read(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` list and read the documents: **Storage Blob Data Reader** on the documents
        container only (not the undelivered events, not the account)."""
        return assign_role(
            f"{self._name}-read-{identity.label}",
            context=self._context,
            scope=self._documents.id,
            role="Storage Blob Data Reader",
            identity=identity,
            parent=self,
        )


def _as_the_topic() -> eventgrid.EventSubscriptionIdentityArgs:
    """Deliver and dead-letter as the system topic's own identity, which holds the two grants."""
    return eventgrid.EventSubscriptionIdentityArgs(
        type=eventgrid.EventSubscriptionIdentityType.SYSTEM_ASSIGNED
    )
