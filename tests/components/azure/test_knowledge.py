"""KnowledgeSource on its own: a locked-down documents account, and its blob events delivered to one queue
with the system topic's own identity, nothing else granted."""

from __future__ import annotations

import pytest

from components.azure.knowledge import KnowledgeSource, KnowledgeSourceArgs
from components.azure.messaging import Messaging, MessagingArgs, QueueSpec
from components.azure.role_ids import BUILTIN_ROLES
from core.graph import Resource, ResourceGraph

ACCOUNT = "azure-native:storage:StorageAccount"
BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
CONTAINER = "azure-native:storage:BlobContainer"
TOPIC = "azure-native:eventgrid:SystemTopic"
SUBSCRIPTION = "azure-native:eventgrid:SystemTopicEventSubscription"
QUEUE = "azure-native:servicebus:Queue"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"
INGEST = "knowledge-ingest"


def _factory(*, zone_redundant: bool = False):
    def factory(context, identity):
        bus = Messaging(
            "bus", context, MessagingArgs(sku="Premium", queues=(QueueSpec("tasks"), QueueSpec(INGEST)))
        )
        source = KnowledgeSource(
            "documents", context, KnowledgeSourceArgs(bus=bus, queue=INGEST, zone_redundant=zone_redundant)
        )
        return {
            "read": source.grant_read(identity).id,
            "accountId": source.account_id,
            "accountName": source.account_name,
            "sourceUrl": source.source_url,
            "systemTopicId": source.system_topic_id,
            "targets": [[t.name, t.group_id, t.dns_zone] for t in source.private_link_targets],
        }

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory())


@pytest.fixture(scope="module")
def isolated(build) -> ResourceGraph:
    return build(_factory(zone_redundant=True), isolated=True)


def _container(graph: ResourceGraph, name: str) -> Resource:
    (found,) = [c for c in graph.of_type(CONTAINER) if c.get("containerName") == name]
    return found


def _assignments_by(graph: ResourceGraph, holder: Resource) -> list[Resource]:
    return [a for a in graph.of_type(ROLE_ASSIGNMENT) if holder.urn in a.dependencies]


def test_the_account_takes_entra_id_only(graph, only):
    account = only(graph, ACCOUNT)
    assert {key: account.get(key) for key in account.inputs if key not in ("tags", "resourceGroupName")} == {
        "accountName": "agstteststdocumentsabcde",
        "location": "westeurope",
        "kind": "StorageV2",
        "sku": {"name": "Standard_LRS"},
        "allowSharedKeyAccess": False,
        "defaultToOAuthAuthentication": True,
        "allowBlobPublicAccess": False,
        "allowCrossTenantReplication": False,
        "enableHttpsTrafficOnly": True,
        "minimumTlsVersion": "TLS1_2",
        "publicNetworkAccess": "Enabled",
        "networkRuleSet": {"defaultAction": "Allow", "bypass": "AzureServices"},
    }, account.urn


def test_an_isolated_account_is_private_and_zone_redundant_on_request(isolated, only):
    account = only(isolated, ACCOUNT)
    assert account.get("publicNetworkAccess") == "Disabled", account.urn
    assert account.get("networkRuleSet") == {"defaultAction": "Deny", "bypass": "AzureServices"}, account.urn
    assert account.get("sku") == {"name": "Standard_ZRS"}, account.urn


def test_deleted_and_overwritten_documents_stay_recoverable(graph, only):
    service = only(graph, BLOB_SERVICE)
    assert service.get("accountName") == only(graph, ACCOUNT).get("accountName"), service.urn
    assert service.get("blobServicesName") == "default", service.urn
    assert service.get("isVersioningEnabled") is True, service.urn
    for policy in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"):
        assert service.get(policy) == {"enabled": True, "days": 30}, f"{service.urn}: {policy}"


@pytest.mark.parametrize("name", ["documents", "undelivered-events"])
def test_containers_are_private(graph, only, name):
    container = _container(graph, name)
    assert container.get("publicAccess") == "None", container.urn
    assert container.get("accountName") == only(graph, ACCOUNT).get("accountName"), container.urn


def test_the_system_topic_watches_the_account_with_its_own_identity(graph, only, build):
    topic, account = only(graph, TOPIC), only(graph, ACCOUNT)
    assert topic.get("source") == account.mock_id, topic.urn
    assert topic.get("topicType") == "Microsoft.Storage.StorageAccounts", topic.urn
    assert topic.get("identity") == {"type": "SystemAssigned"}, topic.urn
    assert topic.get("systemTopicName") == "agst-test-egst-documents-abcde", topic.urn
    assert (topic.get("location"), topic.get("tags")) == ("westeurope", build.tags), topic.urn


def test_the_subscription_delivers_the_documents_blob_events_to_the_queue_as_the_topic(graph, only):
    subscription, topic, account = only(graph, SUBSCRIPTION), only(graph, TOPIC), only(graph, ACCOUNT)
    (queue,) = [q for q in graph.of_type(QUEUE) if q.get("queueName") == INGEST]
    assert {key: value for key, value in subscription.inputs.items() if key != "resourceGroupName"} == {
        "systemTopicName": topic.get("systemTopicName"),
        "eventSubscriptionName": "to-knowledge-ingest",
        "filter": {
            "includedEventTypes": ["Microsoft.Storage.BlobCreated", "Microsoft.Storage.BlobDeleted"],
            "subjectBeginsWith": "/blobServices/default/containers/documents/",
            "isSubjectCaseSensitive": False,
        },
        "eventDeliverySchema": "EventGridSchema",
        "deliveryWithResourceIdentity": {
            "identity": {"type": "SystemAssigned"},
            "destination": {"endpointType": "ServiceBusQueue", "resourceId": queue.mock_id},
        },
        "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440},
        "deadLetterWithResourceIdentity": {
            "identity": {"type": "SystemAssigned"},
            "deadLetterDestination": {
                "endpointType": "StorageBlob",
                "resourceId": account.mock_id,
                "blobContainerName": "undelivered-events",
            },
        },
    }, subscription.urn


def test_the_topic_may_send_to_the_ingest_queue_and_write_undelivered_events_only(graph, only, assert_grant):
    """The grants' principal is the topic's system-assigned identity: an output of the topic."""
    topic = only(graph, TOPIC)
    sender = BUILTIN_ROLES["Azure Service Bus Data Sender"]
    contributor = BUILTIN_ROLES["Storage Blob Data Contributor"]
    granted = {a.get("roleDefinitionId").rsplit("/", 1)[-1]: a for a in _assignments_by(graph, topic)}
    assert set(granted) == {sender, contributor}, [a.urn for a in granted.values()]
    (queue,) = [q for q in graph.of_type(QUEUE) if q.get("queueName") == INGEST]
    assert_grant(granted[sender], sender, queue)
    assert_grant(granted[contributor], contributor, _container(graph, "undelivered-events"))
    subscription = only(graph, SUBSCRIPTION)
    for assignment in granted.values():
        assert assignment.urn in subscription.dependencies, "Event Grid checks its access when it subscribes"


def test_grant_read_is_blob_data_reader_on_the_documents_container_only(graph, outputs, assert_grant):
    (read,) = [a for a in graph.of_type(ROLE_ASSIGNMENT) if a.mock_id == outputs(graph)["read"]]
    reader = BUILTIN_ROLES["Storage Blob Data Reader"]
    assert_grant(read, reader, _container(graph, "documents"))
    assert len(graph.of_type(ROLE_ASSIGNMENT)) == 3, [a.urn for a in graph.of_type(ROLE_ASSIGNMENT)]


def test_diagnostics_cover_the_account_its_blobs_and_the_events(graph, only, build):
    account, topic = only(graph, ACCOUNT), only(graph, TOPIC)
    by_target = {d.get("resourceUri"): d for d in graph.of_type(DIAGNOSTIC_SETTING)}
    blobs = f"{account.mock_id}/blobServices/default"
    assert set(by_target) >= {account.mock_id, blobs, topic.mock_id}
    assert by_target[account.mock_id].get("logs") == [], "the account itself emits metrics only"
    for target in (blobs, topic.mock_id):
        assert by_target[target].get("logs") == [{"categoryGroup": "allLogs", "enabled": True}], target
        assert by_target[target].get("workspaceId") == build.workspace_id, target


def test_outputs_are_known_before_deployment(graph, only, outputs):
    account, topic = only(graph, ACCOUNT), only(graph, TOPIC)
    name = account.get("accountName")
    received = outputs(graph)
    assert (received["accountId"], received["accountName"]) == (account.mock_id, name)
    assert received["sourceUrl"] == f"https://{name}.blob.core.windows.net/documents"
    assert received["systemTopicId"] == topic.mock_id
    assert received["targets"] == [["documents", "blob", "privatelink.blob.core.windows.net"]]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"retention_days": 0}, ValueError, "retention_days must be between 1 and 365, got 0"),
        ({"retention_days": 366}, ValueError, "retention_days must be between 1 and 365, got 366"),
        (
            {"queue": "ingest"},
            KeyError,
            "the bus has no queue named 'ingest'; known: tasks, knowledge-ingest",
        ),
    ],
)
def test_args_azure_refuses_are_refused(build, changes, error, message):
    def factory(context, identity):
        bus = Messaging("bus", context, MessagingArgs(queues=(QueueSpec("tasks"), QueueSpec(INGEST))))
        KnowledgeSourceArgs(**{"bus": bus, "queue": INGEST, **changes})

    with pytest.raises(error, match=message):
        build(factory)
