"""Document events off the ingestion queue: Event Grid blob events (Event Grid or CloudEvents schema,
delivered to Service Bus as JSON or to a Storage queue as base64 JSON) and S3 event notifications on SQS.

An event only names a document that may have changed; the worker reads the source for what is true now
(see :mod:`agent_runtime.knowledge.documents`). Events about something else (another container, a folder
marker, S3's ``s3:TestEvent``, blob tier changes) name no document and are acknowledged; a body that is
none of these shapes is a :class:`MalformedEvent` and goes to the dead-letter queue with that reason.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

BLOB_EVENTS = {"Microsoft.Storage.BlobCreated", "Microsoft.Storage.BlobDeleted"}
S3_EVENT_PREFIXES = ("ObjectCreated:", "ObjectRemoved:")


class MalformedEvent(ValueError):
    """A queue message that is no document event the worker knows."""


@dataclass(frozen=True)
class DocumentEvent:
    """``document_id`` in the source may have changed; ``kind`` (the event's own type) is for the log."""

    document_id: str
    kind: str


DocumentIdOf = Callable[[str, str], str | None]
"""``(container or bucket, object name) -> document id`` or ``None`` when outside the source."""


def parse_events(body: Any, document_id_of: DocumentIdOf) -> list[DocumentEvent]:
    """The document events of one queue message's body (a decoded JSON value, or raw text)."""
    payload = _decoded(body)
    if isinstance(payload, list):  # Event Grid may batch events in one array
        return [event for item in payload for event in parse_events(item, document_id_of)]
    if not isinstance(payload, dict):
        raise MalformedEvent(f"expected a JSON object or array of events, got {type(payload).__name__}")
    if "Records" in payload:
        return _s3_events(payload["Records"], document_id_of)
    if payload.get("Event") == "s3:TestEvent":
        return []
    event_type = payload.get("eventType") or payload.get("type")  # Event Grid / CloudEvents schema
    if isinstance(event_type, str) and isinstance(payload.get("subject"), str):
        return _blob_event(event_type, payload["subject"], document_id_of)
    raise MalformedEvent(
        "not a document event: expected an Event Grid blob event (eventType/type and subject) or an S3 "
        f"notification (Records); got keys {sorted(payload)[:10]}"
    )


def _decoded(body: Any) -> Any:
    """JSON text or a Storage queue's base64 JSON, decoded; ``{"raw": text}`` is how the bus adapters hand
    over a body that was not JSON."""
    if isinstance(body, dict) and set(body) == {"raw"} and isinstance(body["raw"], str):
        body = body["raw"]
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return body
    for candidate in (body, _base64_text(body)):
        if candidate is None:
            continue
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise MalformedEvent("the message body is neither JSON nor base64-encoded JSON")


def _base64_text(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _blob_event(event_type: str, subject: str, document_id_of: DocumentIdOf) -> list[DocumentEvent]:
    """``/blobServices/default/containers/<container>/blobs/<name>`` -> the blob's document."""
    if event_type not in BLOB_EVENTS:
        return []
    prefix, separator, name = subject.partition("/blobs/")
    container = prefix.rsplit("/containers/", 1)[-1] if "/containers/" in prefix else ""
    if not separator or not container or not name:
        raise MalformedEvent(f"blob event subject {subject!r} names no container and blob")
    document_id = document_id_of(container, name)
    return [] if document_id is None else [DocumentEvent(document_id, event_type.rsplit(".", 1)[-1])]


def _s3_events(records: Any, document_id_of: DocumentIdOf) -> list[DocumentEvent]:
    if not isinstance(records, list):
        raise MalformedEvent("S3 notification 'Records' must be a list")
    events = []
    for record in records:
        try:
            name = record["eventName"]
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])  # keys arrive form-encoded
        except (KeyError, TypeError) as error:
            raise MalformedEvent(f"S3 notification record without {error}") from error
        if not isinstance(name, str) or not name.startswith(S3_EVENT_PREFIXES):
            continue
        document_id = document_id_of(bucket, key)
        if document_id is not None:
            events.append(DocumentEvent(document_id, name))
    return events
