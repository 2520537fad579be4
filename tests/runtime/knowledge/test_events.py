"""Document events as the queues deliver them: Event Grid (both schemas, JSON or base64) and S3 notifications."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from agent_runtime.knowledge.events import DocumentEvent, MalformedEvent, parse_events


def in_documents(container: str, name: str) -> str | None:
    return name if container == "documents" else None


def event_grid(event_type: str, name: str, container: str = "documents") -> dict[str, Any]:
    """A blob event in the Event Grid schema, as Event Grid delivers it to a Service Bus queue."""
    return {
        "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/docs",
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": f"Microsoft.Storage.{event_type}",
        "id": "6d79ed0c-0000-0000-0000-000000000000",
        "data": {"api": "PutBlob", "url": f"https://docs.blob.core.windows.net/{container}/{name}"},
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": "2026-12-04T10:00:00Z",
    }


def s3_record(event_name: str, key: str, bucket: str = "documents") -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}},
    }


@pytest.mark.parametrize("event_type", ["BlobCreated", "BlobDeleted"])
def test_an_event_grid_blob_event_names_its_blob(event_type: str) -> None:
    assert parse_events(event_grid(event_type, "hr/leave policy.md"), in_documents) == [
        DocumentEvent("hr/leave policy.md", event_type)
    ]


def test_a_cloud_event_names_its_blob() -> None:
    body = {
        "specversion": "1.0",
        "type": "Microsoft.Storage.BlobCreated",
        "source": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/docs",
        "subject": "/blobServices/default/containers/documents/blobs/a.md",
        "id": "1",
        "data": {},
    }
    assert parse_events(body, in_documents) == [DocumentEvent("a.md", "BlobCreated")]


def test_a_storage_queue_message_is_base64_json_even_when_the_bus_hands_it_over_raw() -> None:
    encoded = base64.b64encode(json.dumps(event_grid("BlobCreated", "a.md")).encode()).decode()
    assert parse_events(encoded, in_documents) == [DocumentEvent("a.md", "BlobCreated")]
    assert parse_events({"raw": encoded}, in_documents) == [DocumentEvent("a.md", "BlobCreated")]


def test_a_batch_array_gives_every_event_in_order() -> None:
    batch = [event_grid("BlobCreated", "a.md"), event_grid("BlobDeleted", "b.md")]
    assert [event.document_id for event in parse_events(batch, in_documents)] == ["a.md", "b.md"]


def test_events_outside_the_source_or_about_something_else_name_no_document() -> None:
    assert parse_events(event_grid("BlobCreated", "a.md", container="other"), in_documents) == []
    assert parse_events(event_grid("BlobTierChanged", "a.md"), in_documents) == []
    assert parse_events({"Service": "Amazon S3", "Event": "s3:TestEvent"}, in_documents) == []
    assert parse_events({"Records": [s3_record("ObjectRestore:Completed", "a.md")]}, in_documents) == []


def test_s3_keys_arrive_form_encoded_and_are_decoded() -> None:
    body = {
        "Records": [
            s3_record("ObjectCreated:Put", "hr/leave+policy%28v2%29.md"),
            s3_record("ObjectRemoved:Delete", "caf%C3%A9.txt"),
        ]
    }
    assert parse_events(body, in_documents) == [
        DocumentEvent("hr/leave policy(v2).md", "ObjectCreated:Put"),
        DocumentEvent("café.txt", "ObjectRemoved:Delete"),
    ]


@pytest.mark.parametrize(
    "body, reason",
    [
        ("not json at all", "neither JSON nor base64"),
        (42, "expected a JSON object or array"),
        ({"hello": "world"}, "not a document event"),
        ({"Records": "nope"}, "must be a list"),
        ({"Records": [{"eventName": "ObjectCreated:Put"}]}, "without 's3'"),
        ({"eventType": "Microsoft.Storage.BlobCreated", "subject": "/containers/x"}, "names no container"),
    ],
)
def test_a_body_that_is_no_document_event_is_malformed_with_the_reason(body: Any, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse_events(body, in_documents)
