"""Messaging: the Service Bus namespace that carries the runtime's task and orchestration flows.

Shared-access (SAS) keys are disabled (``disableLocalAuth``), so there is no connection string to leak:
senders and receivers authenticate with an Entra ID token, and each grant is scoped to one entity
(queue, topic or subscription) rather than the namespace - an agent identity reaches only its own queue.
Every receiving entity dead-letters expired messages and messages delivered too often, so a poison
message ends in the dead-letter queue where it can be inspected instead of looping or vanishing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NotRequired, TypedDict, TypeVar

import pulumi
from pulumi_azure_native import authorization, servicebus

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity, Principal
from components.azure.private_link import PrivateLinkTarget
from components.azure.roles import assign_role
from components.base import Component

PREMIUM_CAPACITIES = (1, 2, 4, 8, 16)  # messaging units with one partition
STANDARD_SIZES_MB = (1024, 2048, 3072, 4096, 5120)  # queue/topic sizes of 1-5 GB
PREMIUM_SIZES_MB = (*STANDARD_SIZES_MB, 10240, 20480, 40960, 81920)  # Premium entities reach 80 GB
MAX_LOCK = timedelta(minutes=5)
DUPLICATE_WINDOW = (timedelta(seconds=20), timedelta(days=7))
# Entity names: letters, digits, periods, hyphens and underscores, starting and ending alphanumeric.
_ENTITY_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(value: str) -> timedelta:
    """An ISO 8601 duration of days, hours, minutes and seconds (``P1D``, ``PT10M``) as a ``timedelta``.

    Service Bus takes these strings as they are; parsing them here lets a wrong limit fail at
    ``pulumi preview`` with the setting's name instead of midway through ``pulumi up``.
    """
    match = _DURATION.match(value)
    if not match or value in ("P", "PT") or value.endswith("T"):
        raise ValueError(f"'{value}' is not an ISO 8601 duration such as 'PT1M' or 'P1D'")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class SubscriptionSpec:
    """How consumers receive from an entity: a topic subscription, and the receiving side of a queue.

    ``max_delivery_count`` (default 5): deliveries before a message is dead-lettered; low enough that a
    poison task stops costing model calls quickly, high enough to ride out a transient model error.
    ``lock_duration`` (default ``PT1M``, at most ``PT5M``): how long a receiver holds a message before
    another may take it - longer than one agent step, or renew the lock while working.
    ``default_ttl`` (default ``P1D``): unprocessed messages expire into the dead-letter queue after a day.
    """

    name: str
    max_delivery_count: int = 5
    lock_duration: str = "PT1M"
    default_ttl: str = "P1D"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.max_delivery_count < 1:
            raise ValueError(
                f"'{self.name}': max_delivery_count must be at least 1, got {self.max_delivery_count}"
            )
        if not timedelta(0) < parse_duration(self.lock_duration) <= MAX_LOCK:
            raise ValueError(
                f"'{self.name}': lock_duration must be more than 0 and at most PT5M, got {self.lock_duration}"
            )
        if parse_duration(self.default_ttl) <= timedelta(0):
            raise ValueError(f"'{self.name}': default_ttl must be longer than 0, got {self.default_ttl}")


@dataclass(frozen=True)
class QueueSpec(SubscriptionSpec):
    """A queue: the receiving settings of :class:`SubscriptionSpec`, plus what a topic holds for its subscriptions.

    ``duplicate_detection_window`` (default ``PT10M``; ``None`` turns detection off, 20 s to 7 days):
    a message whose ``message_id`` was seen within the window is dropped, so a sender retrying after a
    timeout does not start the same task twice. It can only be chosen when the queue is created.
    ``max_size_mb`` (default 1024): storage for messages not yet received; 1-5 GB on Standard, up to
    80 GB on Premium. Sends fail once it is full.
    """

    duplicate_detection_window: str | None = "PT10M"
    max_size_mb: int = 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_duplicate_window(self.name, self.duplicate_detection_window)


@dataclass(frozen=True)
class TopicSpec:
    """A topic and its subscriptions (publish once, every subscription gets a copy).

    ``duplicate_detection_window`` and ``max_size_mb``: as on :class:`QueueSpec`, for the topic.
    """

    name: str
    subscriptions: tuple[SubscriptionSpec, ...]
    duplicate_detection_window: str | None = "PT10M"
    max_size_mb: int = 1024

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not self.subscriptions:
            raise ValueError(f"topic '{self.name}' has no subscriptions: its messages would be discarded")
        _check_unique(f"topic '{self.name}': subscription", (s.name for s in self.subscriptions))
        _check_duplicate_window(self.name, self.duplicate_detection_window)

    def subscription(self, name: str) -> SubscriptionSpec:
        """The subscription called ``name``; a clear error for any other name."""
        return _find(f"topic '{self.name}' has no subscription", name, self.subscriptions)


@dataclass(frozen=True)
class MessagingArgs:
    """The namespace's tier and the entities it carries.

    ``sku`` (default ``Standard``): the smallest tier with topics and duplicate detection (Basic has
    neither, so it is not offered), billed per operation. ``Premium`` gives dedicated ``capacity``
    messaging units (default 1; 1, 2, 4, 8 or 16), 80 GB entities, and ``zone_redundant`` (default
    off) replicas across availability zones; both settings are refused on Standard, which has neither.
    ``queues`` and ``topics`` (default none): the entities; names must be unique across both kinds.
    ``trusted_services`` (default off): let the Azure services Microsoft lists as trusted for Service Bus
    through the firewall of an isolated namespace - Event Grid delivering with its managed identity is the
    one agentstage needs, since Event Grid cannot deliver through a private endpoint. They still need a data
    role on the entity (:meth:`Messaging.grant_send`); where the namespace is public it changes nothing.
    """

    sku: Literal["Standard", "Premium"] = "Standard"
    capacity: int = 1
    zone_redundant: bool = False
    queues: tuple[QueueSpec, ...] = ()
    topics: tuple[TopicSpec, ...] = ()
    trusted_services: bool = False

    def __post_init__(self) -> None:
        if self.sku not in ("Standard", "Premium"):
            raise ValueError(f"sku must be 'Standard' or 'Premium', got '{self.sku}'")
        if self.sku == "Premium" and self.capacity not in PREMIUM_CAPACITIES:
            raise ValueError(f"capacity must be one of {PREMIUM_CAPACITIES} on Premium, got {self.capacity}")
        if self.sku == "Standard" and (self.capacity != 1 or self.zone_redundant):
            raise ValueError("capacity and zone_redundant are Premium settings; Standard has neither")
        entities: tuple[QueueSpec | TopicSpec, ...] = (*self.queues, *self.topics)
        # Queues and topics share one entity path space inside the namespace.
        _check_unique("queue or topic", (entity.name for entity in entities))
        sizes = PREMIUM_SIZES_MB if self.sku == "Premium" else STANDARD_SIZES_MB
        for entity in entities:
            if entity.max_size_mb not in sizes:
                raise ValueError(
                    f"'{entity.name}': max_size_mb must be one of {sizes} on {self.sku}, got {entity.max_size_mb}"
                )


class Messaging(Component):
    """A Service Bus namespace with local auth off, its queues, topics and subscriptions (``agentstage:azure:Messaging``).

    Minimum TLS 1.2. With ``context.isolated`` public network access is off and the namespace is reached
    through its private endpoint (``private_link_targets``) only; Service Bus offers private endpoints on
    Premium alone, so an isolated stage refuses Standard. Its firewall is then written out as the
    namespace's network rule set - deny by default, no IP or network rule, trusted services as
    ``MessagingArgs.trusted_services`` says ("allow access to Service Bus resources from certain trusted
    services even when private endpoints are enabled": learn.microsoft.com/azure/service-bus-messaging/
    private-link-service).
    Outputs: ``namespace_id``, ``namespace_name``, ``fully_qualified_namespace``
    (``<name>.servicebus.windows.net``, what the Service Bus SDK connects to with a credential),
    ``queue_ids`` and ``topic_ids`` by entity name.
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: MessagingArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "Messaging", name, opts)
        if context.isolated and args.sku != "Premium":
            raise ValueError(
                f"messaging '{name}': an isolated stage reaches Service Bus through a private endpoint, which "
                f"only the Premium tier offers; set agentstage:messaging.sku to Premium (it is {args.sku})"
            )
        self._name, self._context, self._args = name, context, args
        namespace_name = context.naming.name("servicebus", name)
        premium = args.sku == "Premium"
        namespace = servicebus.Namespace(
            f"{name}-namespace",
            namespace_name=namespace_name,
            resource_group_name=context.resource_group_name,
            location=context.location,
            sku=servicebus.SBSkuArgs(
                name=servicebus.SkuName(args.sku),
                tier=servicebus.SkuTier(args.sku),
                capacity=args.capacity if premium else None,
            ),
            zone_redundant=args.zone_redundant if premium else None,
            disable_local_auth=True,
            minimum_tls_version=servicebus.TlsVersion.TLS_VERSION_1_2,
            public_network_access=context.public_network_access,
            tags=dict(context.tags),
            opts=self.child(),
        )
        send_diagnostics(f"{name}-namespace", context=context, resource_id=namespace.id, parent=self)
        self.network_rules: servicebus.NamespaceNetworkRuleSet | None = None
        """The namespace's firewall on an isolated stage: what a sender from outside (Event Grid, a trusted
        service) must wait for before it is checked."""
        if context.isolated:
            self.network_rules = servicebus.NamespaceNetworkRuleSet(
                f"{name}-network-rules",
                namespace_name=namespace.name,
                resource_group_name=context.resource_group_name,
                public_network_access=servicebus.PublicNetworkAccessFlag.DISABLED,
                default_action=servicebus.DefaultAction.DENY,
                ip_rules=[],
                virtual_network_rules=[],
                trusted_service_access_enabled=args.trusted_services,
                opts=self.child(),
            )
        self.namespace_id: pulumi.Output[str] = namespace.id
        self.namespace_name: pulumi.Output[str] = namespace_name
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            PrivateLinkTarget(name, namespace.id, "namespace", "privatelink.servicebus.windows.net"),
        )
        # Derived from the name (public-cloud DNS) so it is known before deployment and in offline plans.
        self.fully_qualified_namespace: pulumi.Output[str] = pulumi.Output.concat(
            namespace_name, ".servicebus.windows.net"
        )
        # Entities are created under the namespace's *output* name, so each depends on the namespace.
        self.queue_ids: dict[str, pulumi.Output[str]] = {
            queue.name: self._queue(namespace.name, queue).id for queue in args.queues
        }
        self.topic_ids: dict[str, pulumi.Output[str]] = {}
        self._subscription_ids: dict[tuple[str, str], pulumi.Output[str]] = {}
        for topic in args.topics:
            created = self._topic(namespace.name, topic)
            self.topic_ids[topic.name] = created.id
            for subscription in topic.subscriptions:
                self._subscription_ids[topic.name, subscription.name] = self._subscription(
                    namespace.name, created, topic.name, subscription
                ).id
        self.register_outputs(
            {
                "namespace_id": self.namespace_id,
                "namespace_name": self.namespace_name,
                "fully_qualified_namespace": self.fully_qualified_namespace,
                "queue_ids": self.queue_ids,
                "topic_ids": self.topic_ids,
            }
        )

    def grant_send(self, identity: Principal, queue: str) -> authorization.RoleAssignment:
        """Let ``identity`` send to ``queue``: **Azure Service Bus Data Sender** on that queue only.

        ``identity`` may be an Azure service's own (an Event Grid system topic delivering events).
        """
        scope = self.queue_ids[_find("no queue", queue, self._args.queues).name]
        return self._grant(f"send-{queue}", "Azure Service Bus Data Sender", scope, identity)

    def grant_receive(self, identity: ManagedIdentity, queue: str) -> authorization.RoleAssignment:
        """Let ``identity`` receive from ``queue``: **Azure Service Bus Data Receiver** on that queue only.

        Covers peek-lock, complete, abandon and dead-letter, and reading the queue's dead-letter sub-queue.
        """
        scope = self.queue_ids[_find("no queue", queue, self._args.queues).name]
        return self._grant(f"receive-{queue}", "Azure Service Bus Data Receiver", scope, identity)

    def grant_queue_metrics(self, identity: ManagedIdentity, queue: str) -> authorization.RoleAssignment:
        """Let ``identity`` read ``queue``'s message count (a queue-depth autoscaler such as KEDA).

        Reading runtime properties is a management operation that neither Sender nor Receiver includes;
        **Azure Service Bus Data Owner** is the narrowest built-in role with it, so it is scoped to the one
        queue and given to an identity that does nothing else (not the agent's own).
        """
        scope = self.queue_ids[_find("no queue", queue, self._args.queues).name]
        return self._grant(f"metrics-{queue}", "Azure Service Bus Data Owner", scope, identity)

    def grant_publish(self, identity: ManagedIdentity, topic: str) -> authorization.RoleAssignment:
        """Let ``identity`` publish to ``topic``: **Azure Service Bus Data Sender** on that topic only."""
        scope = self.topic_ids[_find("no topic", topic, self._args.topics).name]
        return self._grant(f"publish-{topic}", "Azure Service Bus Data Sender", scope, identity)

    def grant_subscribe(
        self, identity: ManagedIdentity, topic: str, subscription: str
    ) -> authorization.RoleAssignment:
        """Let ``identity`` receive from one subscription: **Azure Service Bus Data Receiver** on that subscription.

        Scoped below the topic, so a consumer cannot read the copies meant for other subscriptions.
        """
        _find("no topic", topic, self._args.topics).subscription(subscription)
        scope = self._subscription_ids[topic, subscription]
        return self._grant(
            f"subscribe-{topic}-{subscription}", "Azure Service Bus Data Receiver", scope, identity
        )

    def _grant(
        self, purpose: str, role: str, scope: pulumi.Input[str], identity: Principal
    ) -> authorization.RoleAssignment:
        return assign_role(
            f"{self._name}-{purpose}-{identity.label}",
            context=self._context,
            scope=scope,
            role=role,
            identity=identity,
            parent=self,
        )

    def _queue(self, namespace_name: pulumi.Input[str], spec: QueueSpec) -> servicebus.Queue:
        return servicebus.Queue(
            f"{self._name}-queue-{spec.name}",
            queue_name=spec.name,
            namespace_name=namespace_name,
            resource_group_name=self._context.resource_group_name,
            max_size_in_megabytes=spec.max_size_mb,
            **_duplicate_detection(spec.duplicate_detection_window),
            **_delivery(spec),
            opts=self.child(),
        )

    def _topic(self, namespace_name: pulumi.Input[str], spec: TopicSpec) -> servicebus.Topic:
        return servicebus.Topic(
            f"{self._name}-topic-{spec.name}",
            topic_name=spec.name,
            namespace_name=namespace_name,
            resource_group_name=self._context.resource_group_name,
            max_size_in_megabytes=spec.max_size_mb,
            **_duplicate_detection(spec.duplicate_detection_window),
            opts=self.child(),
        )

    def _subscription(
        self,
        namespace_name: pulumi.Input[str],
        topic: servicebus.Topic,
        topic_name: str,
        spec: SubscriptionSpec,
    ) -> servicebus.Subscription:
        return servicebus.Subscription(
            f"{self._name}-topic-{topic_name}-{spec.name}",
            subscription_name=spec.name,
            topic_name=topic_name,
            namespace_name=namespace_name,
            resource_group_name=self._context.resource_group_name,
            **_delivery(spec),
            # The topic's name is given as a plain string so plans show it; the edge is made explicit.
            opts=self.child(depends_on=[topic]),
        )


class _Delivery(TypedDict):
    max_delivery_count: int
    lock_duration: str
    default_message_time_to_live: str
    dead_lettering_on_message_expiration: bool


class _DuplicateDetection(TypedDict):
    requires_duplicate_detection: bool
    duplicate_detection_history_time_window: NotRequired[str]


def _delivery(spec: SubscriptionSpec) -> _Delivery:
    """Receiving settings shared by queues and subscriptions; expired messages are dead-lettered, not dropped."""
    return {
        "max_delivery_count": spec.max_delivery_count,
        "lock_duration": spec.lock_duration,
        "default_message_time_to_live": spec.default_ttl,
        "dead_lettering_on_message_expiration": True,
    }


def _duplicate_detection(window: str | None) -> _DuplicateDetection:
    """Duplicate detection settings of a queue or topic (on when a window is given)."""
    if window is None:
        return {"requires_duplicate_detection": False}
    return {"requires_duplicate_detection": True, "duplicate_detection_history_time_window": window}


_Spec = TypeVar("_Spec", SubscriptionSpec, TopicSpec)


def _check_name(name: str) -> None:
    if not _ENTITY_NAME.match(name):
        raise ValueError(
            f"entity name '{name}' must be 1-50 letters, digits, '.', '-' or '_', starting and ending alphanumeric"
        )


def _check_duplicate_window(name: str, window: str | None) -> None:
    if window is not None and not DUPLICATE_WINDOW[0] <= parse_duration(window) <= DUPLICATE_WINDOW[1]:
        raise ValueError(f"'{name}': duplicate_detection_window must be from PT20S to P7D, got {window}")


def _check_unique(kind: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        # Entity names are case-insensitive in Service Bus.
        if name.lower() in seen:
            raise ValueError(f"{kind} name '{name}' is used twice")
        seen.add(name.lower())


def _find(missing: str, name: str, specs: tuple[_Spec, ...]) -> _Spec:
    """The spec called ``name``, or a ``KeyError`` naming the ones that exist."""
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in specs) or "none"
    raise KeyError(f"{missing} named '{name}'; known: {known}")
