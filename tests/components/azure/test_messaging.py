"""Messaging on its own: no SAS keys, poison messages dead-lettered, each grant scoped to one entity."""

from __future__ import annotations

import pytest

from components.azure.messaging import Messaging, MessagingArgs, QueueSpec, SubscriptionSpec, TopicSpec
from components.azure.role_ids import BUILTIN_ROLES
from core.graph import ResourceGraph

NAMESPACE = "azure-native:servicebus:Namespace"
QUEUE = "azure-native:servicebus:Queue"
TOPIC = "azure-native:servicebus:Topic"
SUBSCRIPTION = "azure-native:servicebus:Subscription"
NETWORK_RULES = "azure-native:servicebus:NamespaceNetworkRuleSet"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
SENDER = BUILTIN_ROLES["Azure Service Bus Data Sender"]
RECEIVER = BUILTIN_ROLES["Azure Service Bus Data Receiver"]

ARGS = MessagingArgs(
    queues=(
        QueueSpec("tasks"),
        QueueSpec("results", max_delivery_count=3, lock_duration="PT5M", duplicate_detection_window=None),
    ),
    topics=(TopicSpec("events", subscriptions=(SubscriptionSpec("audit"), SubscriptionSpec("billing"))),),
)


def _factory(context, identity):
    bus = Messaging("bus", context, ARGS)
    return {
        "send": bus.grant_send(identity, "tasks").id,
        "receive": bus.grant_receive(identity, "results").id,
        "publish": bus.grant_publish(identity, "events").id,
        "subscribe": bus.grant_subscribe(identity, "events", "audit").id,
        "namespaceId": bus.namespace_id,
        "namespaceName": bus.namespace_name,
        "fqdn": bus.fully_qualified_namespace,
        "queueIds": bus.queue_ids,
        "topicIds": bus.topic_ids,
    }


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory)


@pytest.fixture(scope="module")
def isolated_premium(build) -> ResourceGraph:
    args = MessagingArgs(
        sku="Premium", capacity=2, zone_redundant=True, queues=(QueueSpec("tasks", max_size_mb=81920),)
    )

    def factory(context, identity):
        Messaging("bus", context, args)

    return build(factory, isolated=True)


def _named(graph: ResourceGraph, type_: str, name: str):
    key = {QUEUE: "queueName", TOPIC: "topicName", SUBSCRIPTION: "subscriptionName"}[type_]
    found = [r for r in graph.of_type(type_) if r.get(key) == name]
    assert len(found) == 1, f"expected one {type_} named {name}, found {[r.urn for r in found]}"
    return found[0]


def test_namespace_accepts_entra_id_only_over_tls_1_2(graph, only):
    namespace = only(graph, NAMESPACE)
    assert namespace.get("disableLocalAuth") is True, namespace.urn
    assert namespace.get("minimumTlsVersion") == "1.2", namespace.urn
    assert namespace.get("sku") == {"name": "Standard", "tier": "Standard"}, namespace.urn
    assert namespace.get("zoneRedundant") is None, namespace.urn


def test_public_access_follows_isolation_and_premium_is_sized(graph, isolated_premium, only):
    assert only(graph, NAMESPACE).get("publicNetworkAccess") == "Enabled", only(graph, NAMESPACE).urn
    namespace = only(isolated_premium, NAMESPACE)
    assert namespace.get("publicNetworkAccess") == "Disabled", namespace.urn
    assert namespace.get("sku") == {"name": "Premium", "tier": "Premium", "capacity": 2}, namespace.urn
    assert namespace.get("zoneRedundant") is True, namespace.urn
    assert only(isolated_premium, QUEUE).get("maxSizeInMegabytes") == 81920


def test_an_isolated_namespace_writes_out_a_firewall_that_trusted_services_pass_only_when_asked(
    build, isolated_premium, only
):
    """Event Grid cannot deliver through a private endpoint: it reaches an isolated namespace as a trusted
    service with its own identity, which the namespace must allow explicitly."""

    def factory(context, identity):
        Messaging(
            "bus", context, MessagingArgs(sku="Premium", queues=(QueueSpec("events"),), trusted_services=True)
        )

    trusted = build(factory, isolated=True)
    rules, namespace = only(trusted, NETWORK_RULES), only(trusted, NAMESPACE)
    assert rules.inputs == {
        "namespaceName": namespace.get("namespaceName"),
        "resourceGroupName": namespace.get("resourceGroupName"),
        "publicNetworkAccess": "Disabled",
        "defaultAction": "Deny",
        "ipRules": [],
        "virtualNetworkRules": [],
        "trustedServiceAccessEnabled": True,
    }, rules.urn
    assert namespace.urn in rules.dependencies, "the rule set is the namespace's own"
    assert only(isolated_premium, NETWORK_RULES).get("trustedServiceAccessEnabled") is False


def test_a_public_namespace_has_no_firewall_to_write(graph):
    assert graph.of_type(NETWORK_RULES) == []


@pytest.mark.parametrize(("queue", "deliveries", "lock"), [("tasks", 5, "PT1M"), ("results", 3, "PT5M")])
def test_queues_dead_letter_poison_and_expired_messages(graph, queue, deliveries, lock):
    resource = _named(graph, QUEUE, queue)
    assert resource.get("deadLetteringOnMessageExpiration") is True, resource.urn
    assert resource.get("maxDeliveryCount") == deliveries, resource.urn
    assert resource.get("lockDuration") == lock, resource.urn
    assert resource.get("defaultMessageTimeToLive") == "P1D", resource.urn
    assert resource.get("maxSizeInMegabytes") == 1024, resource.urn


def test_duplicate_detection_is_on_by_default_and_can_be_turned_off(graph):
    tasks, results = _named(graph, QUEUE, "tasks"), _named(graph, QUEUE, "results")
    assert tasks.get("requiresDuplicateDetection") is True, tasks.urn
    assert tasks.get("duplicateDetectionHistoryTimeWindow") == "PT10M", tasks.urn
    assert results.get("requiresDuplicateDetection") is False, results.urn
    assert results.get("duplicateDetectionHistoryTimeWindow") is None, results.urn


def test_entities_live_in_the_namespace(graph, only):
    namespace = only(graph, NAMESPACE)
    topic = _named(graph, TOPIC, "events")
    for entity in [*graph.of_type(QUEUE), topic, *graph.of_type(SUBSCRIPTION)]:
        assert entity.get("namespaceName") == namespace.get("namespaceName"), entity.urn
        assert namespace.urn in entity.dependencies, f"{entity.urn} does not wait for the namespace"
    assert topic.get("requiresDuplicateDetection") is True, topic.urn
    for name in ("audit", "billing"):
        subscription = _named(graph, SUBSCRIPTION, name)
        assert subscription.get("topicName") == "events", subscription.urn
        assert topic.urn in subscription.dependencies, f"{subscription.urn} does not wait for its topic"
        assert subscription.get("deadLetteringOnMessageExpiration") is True, subscription.urn
        assert subscription.get("maxDeliveryCount") == 5, subscription.urn


def test_diagnostics_go_to_the_workspace(graph, only, build, assert_diagnostics):
    assert_diagnostics(graph, only(graph, NAMESPACE), build.workspace_id)
    setting = only(graph, "azure-native:monitor:DiagnosticSetting")
    assert [log["categoryGroup"] for log in setting.get("logs")] == ["allLogs"], setting.urn
    assert setting.get("metrics")[0]["category"] == "AllMetrics", setting.urn


@pytest.mark.parametrize(
    ("output", "role", "type_", "target"),
    [
        ("send", SENDER, QUEUE, "tasks"),
        ("receive", RECEIVER, QUEUE, "results"),
        ("publish", SENDER, TOPIC, "events"),
        ("subscribe", RECEIVER, SUBSCRIPTION, "audit"),
    ],
)
def test_each_grant_is_one_data_role_on_exactly_its_entity(
    graph, outputs, assert_grant, output, role, type_, target
):
    assignments = [a for a in graph.of_type(ROLE_ASSIGNMENT) if a.mock_id == outputs(graph)[output]]
    assert len(assignments) == 1, f"{output}: {[a.urn for a in assignments]}"
    assert_grant(assignments[0], role, _named(graph, type_, target))


def test_four_grants_make_four_assignments_none_on_the_namespace(graph, only):
    assignments = graph.of_type(ROLE_ASSIGNMENT)
    assert len(assignments) == 4, [a.urn for a in assignments]
    namespace = only(graph, NAMESPACE)
    assert all(a.get("scope") != namespace.mock_id for a in assignments), (
        "a grant reaches the whole namespace"
    )


def test_outputs_are_known_before_deployment(graph, only, outputs):
    namespace = only(graph, NAMESPACE)
    name = namespace.get("namespaceName")
    assert name == "agst-test-sb-bus-abcde", namespace.urn
    received = outputs(graph)
    assert (received["namespaceId"], received["namespaceName"]) == (namespace.mock_id, name)
    assert received["fqdn"] == f"{name}.servicebus.windows.net"
    assert received["queueIds"] == {q: _named(graph, QUEUE, q).mock_id for q in ("tasks", "results")}
    assert received["topicIds"] == {"events": _named(graph, TOPIC, "events").mock_id}


def test_tags_propagate(graph, only, build):
    namespace = only(graph, NAMESPACE)
    assert namespace.get("tags") == build.tags, namespace.urn


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        (
            lambda bus, identity: bus.grant_send(identity, "task"),
            "no queue named 'task'; known: tasks, results",
        ),
        (lambda bus, identity: bus.grant_receive(identity, "events"), "no queue named 'events'"),
        (lambda bus, identity: bus.grant_publish(identity, "tasks"), "no topic named 'tasks'; known: events"),
        (
            lambda bus, identity: bus.grant_subscribe(identity, "events", "ops"),
            "topic 'events' has no subscription named 'ops'; known: audit, billing",
        ),
    ],
)
def test_grants_to_unknown_entities_are_refused(build, grant, message):
    def factory(context, identity):
        grant(Messaging("bus", context, ARGS), identity)

    with pytest.raises(KeyError, match=message):
        build(factory)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: QueueSpec("tasks", max_delivery_count=0),
            "'tasks': max_delivery_count must be at least 1, got 0",
        ),
        (
            lambda: QueueSpec("tasks", lock_duration="PT6M"),
            "lock_duration must be more than 0 and at most PT5M",
        ),
        (lambda: QueueSpec("tasks", lock_duration="1 minute"), "'1 minute' is not an ISO 8601 duration"),
        (
            lambda: QueueSpec("tasks", duplicate_detection_window="PT10S"),
            "must be from PT20S to P7D, got PT10S",
        ),
        (lambda: QueueSpec("-tasks"), "entity name '-tasks' must be"),
        (lambda: TopicSpec("events", subscriptions=()), "topic 'events' has no subscriptions"),
        (
            lambda: TopicSpec("events", subscriptions=(SubscriptionSpec("a"), SubscriptionSpec("A"))),
            "subscription name 'A' is used twice",
        ),
        (
            lambda: MessagingArgs(
                queues=(QueueSpec("work"),), topics=(TopicSpec("work", (SubscriptionSpec("a"),)),)
            ),
            "queue or topic name 'work' is used twice",
        ),
        (lambda: MessagingArgs(sku="Basic"), "sku must be 'Standard' or 'Premium', got 'Basic'"),
        (lambda: MessagingArgs(sku="Premium", capacity=3), r"capacity must be one of \(1, 2, 4, 8, 16\)"),
        (lambda: MessagingArgs(zone_redundant=True), "Premium settings; Standard has neither"),
        (
            lambda: MessagingArgs(queues=(QueueSpec("tasks", max_size_mb=10240),)),
            "max_size_mb must be one of",
        ),
    ],
)
def test_settings_azure_refuses_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
