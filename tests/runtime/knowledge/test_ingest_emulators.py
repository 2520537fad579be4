"""Ingestion end to end on the emulators: blob + Event Grid events on a Storage queue (Azurite), and S3 event
notifications to SQS (moto, which sends them itself). Documents are created, changed, deleted and their
events redelivered; the index must equal the source after each step, and a poison document must land in
the dead-letter queue with its reason while the documents behind it are still ingested.

Azurite has no Event Grid: the test writes the events Event Grid would (its documented blob event schema,
base64 JSON as it delivers to Storage queues). moto emits the S3 notifications itself.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.queue import QueueClient
from bus.bus_helpers import sqs_client
from servers import AZURITE_ACCOUNT, AZURITE_KEY, AzuriteStorage, MotoServer, azurite_storage

from agent_runtime.bus.base import MessageBus
from agent_runtime.bus.sqs import SqsBus
from agent_runtime.bus.storage_queue import StorageQueueBus
from agent_runtime.knowledge.base import KnowledgeQuery
from agent_runtime.knowledge.cloud_sources import S3_EVERYONE, BlobSource, S3Source
from agent_runtime.knowledge.ingest import IngestOptions, Ingestor
from agent_runtime.knowledge.service import DocumentEvents, IngestWorker
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex
from agent_runtime.testing.server import embed

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
DIMENSIONS = 64
CONTAINER = "documents"
QUEUE = "knowledge-ingest"


async def embed_batch(texts: Sequence[str]) -> list[list[float]]:
    return [embed(text, DIMENSIONS) for text in texts]


@pytest.fixture(scope="module")
def azurite() -> Iterator[AzuriteStorage]:
    with azurite_storage() as server:
        yield server


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SqliteKnowledgeIndex]:
    index = await SqliteKnowledgeIndex.open(str(tmp_path / "state.db"), DIMENSIONS)
    yield index
    await index.close()


async def drain(worker: IngestWorker, bus: MessageBus) -> int:
    """Settle every message on the queue; returns how many there were."""
    settled = 0
    while messages := await bus.receive(worker.queue, max_messages=10, wait_seconds=1.0):
        for message in messages:
            await worker.settle(message)
            settled += 1
    return settled


async def indexed(index: SqliteKnowledgeIndex, *principals: str) -> dict[str, list[str]]:
    """Every passage the principals may read, by document (a search broad enough to return them all)."""
    query = KnowledgeQuery("the", embed("the", DIMENSIONS), frozenset(principals), top_k=50, mode="vector")
    found: dict[str, list[str]] = {}
    for passage in await index.search(query):
        found.setdefault(passage.document_id, []).append(passage.text)
    return found


# -- Azure: Blob Storage + Event Grid blob events on a Storage queue ----------------------------------------


class BlobStore:
    """The documents container and the queue Event Grid writes its blob events to."""

    def __init__(self, azurite: AzuriteStorage, container: str) -> None:
        self.container = BlobServiceClient.from_connection_string(
            azurite.connection_string
        ).get_container_client(container)
        self.container.create_container()
        self.events = QueueClient.from_connection_string(azurite.connection_string, QUEUE + container[-8:])
        self.events.create_queue()

    def put(
        self, name: str, text: str, readers: str | None = "*", content_type: str = "text/markdown"
    ) -> None:
        metadata = {"readers": readers} if readers is not None else {}
        self.container.upload_blob(
            name,
            text.encode(),
            overwrite=True,
            metadata=metadata,
            content_settings=ContentSettings(content_type),
        )
        self.notify("BlobCreated", name)

    def delete(self, name: str) -> None:
        self.container.delete_blob(name)
        self.notify("BlobDeleted", name)

    def notify(self, event_type: str, name: str) -> None:
        event = {
            "topic": f"/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{AZURITE_ACCOUNT}",
            "subject": f"/blobServices/default/containers/{self.container.container_name}/blobs/{name}",
            "eventType": f"Microsoft.Storage.{event_type}",
            "id": str(uuid.uuid4()),
            "data": {"api": "PutBlob", "url": f"{self.container.url}/{name}"},
            "dataVersion": "",
            "metadataVersion": "1",
            "eventTime": "2026-12-04T10:00:00Z",
        }
        self.events.send_message(base64.b64encode(json.dumps(event).encode()).decode())


@pytest.fixture
async def azure(
    azurite: AzuriteStorage, index: SqliteKnowledgeIndex
) -> AsyncIterator[tuple[BlobStore, IngestWorker, MessageBus]]:
    container = f"docs{uuid.uuid4().hex[:12]}"
    store = BlobStore(azurite, container)
    source = BlobSource.from_url(
        store.container.url, {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    )
    ingestor = Ingestor(source, index, embed_batch, IngestOptions(dimensions=DIMENSIONS))
    events = DocumentEvents(ingestor, lambda name, blob: blob if name == container else None)
    bus = StorageQueueBus.from_connection_string(azurite.connection_string, max_delivery_count=2)
    yield store, IngestWorker(events, bus, store.events.queue_name), bus
    await bus.close()
    await events.close()


async def test_blob_events_keep_the_index_equal_to_the_container(
    azure: tuple[BlobStore, IngestWorker, MessageBus], index: SqliteKnowledgeIndex
) -> None:
    store, worker, bus = azure
    store.put("handbook.md", "# Handbook\n\nThe leave policy gives the staff twenty days.")
    store.put("hr/pay.md", "# Pay\n\nThe pay bands are reviewed in the spring.", readers="hr")
    assert await drain(worker, bus) == 2
    assert set(await indexed(index, "staff")) == {"handbook.md"}
    assert set(await indexed(index, "hr")) == {"handbook.md", "hr/pay.md"}

    store.put("handbook.md", "# Handbook\n\nThe leave policy now gives the staff thirty days.")
    store.delete("hr/pay.md")
    store.notify("BlobCreated", "handbook.md")  # a redelivered event changes nothing
    assert await drain(worker, bus) == 3
    assert await indexed(index, "hr") == {
        "handbook.md": ["The leave policy now gives the staff thirty days."]
    }
    assert await bus.dead_letters(worker.queue) == []


async def test_a_poison_blob_is_dead_lettered_with_its_reason_and_does_not_block_the_queue(
    azure: tuple[BlobStore, IngestWorker, MessageBus], index: SqliteKnowledgeIndex
) -> None:
    store, worker, bus = azure
    store.put("deck.pptx", "not a supported document", content_type="application/vnd.ms-powerpoint")
    store.put("after.md", "# After\n\nThis one still gets in.")
    await drain(worker, bus)
    [letter] = await bus.dead_letters(worker.queue)
    assert "deck.pptx" in letter.reason and "unsupported" in letter.reason
    assert set(await indexed(index, "anyone")) == {"after.md"}


# -- AWS: S3 event notifications to SQS ---------------------------------------------------------------------


@pytest.fixture
async def aws(
    moto: MotoServer, index: SqliteKnowledgeIndex
) -> AsyncIterator[tuple[Any, str, IngestWorker, MessageBus]]:
    bucket, queue = f"docs-{uuid.uuid4().hex[:12]}", f"ingest-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.endpoint_url,
        region_name=moto.region,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
    )
    sqs = sqs_client(moto.endpoint_url, moto.region)
    bus = SqsBus(sqs, max_delivery_count=2, create_queues=True)
    await bus.receive(queue, wait_seconds=0)  # creates the queue and its dead-letter queue
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    source = S3Source(bucket, "kb/", client=s3)
    ingestor = Ingestor(source, index, embed_batch, IngestOptions(dimensions=DIMENSIONS))
    events = DocumentEvents(
        ingestor, lambda name, key: source.document_id_of(key) if name == bucket else None
    )
    yield s3, bucket, IngestWorker(events, bus, queue), bus
    await bus.close()
    await events.close()


def put_object(s3: Any, bucket: str, key: str, text: str, readers: str | None = S3_EVERYONE) -> None:
    tagging = {"Tagging": f"readers={readers}"} if readers is not None else {}
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/markdown", **tagging)


async def test_s3_notifications_keep_the_index_equal_to_the_prefix(
    aws: tuple[Any, str, IngestWorker, MessageBus], index: SqliteKnowledgeIndex
) -> None:
    s3, bucket, worker, bus = aws
    put_object(s3, bucket, "kb/faq one.md", "# FAQ\n\nParcels are tracked by their waybill number.")
    put_object(
        s3, bucket, "kb/finance/rates.md", "# Rates\n\nThe rates change in the winter.", readers="finance"
    )
    put_object(s3, bucket, "elsewhere/ignored.md", "# Not under the prefix")
    await drain(worker, bus)
    assert set(await indexed(index, "finance")) == {"faq one.md", "finance/rates.md"}
    assert set(await indexed(index, "support")) == {"faq one.md"}

    put_object(s3, bucket, "kb/faq one.md", "# FAQ\n\nParcels are tracked by their waybill or order number.")
    s3.delete_object(Bucket=bucket, Key="kb/finance/rates.md")
    await drain(worker, bus)
    assert await indexed(index, "finance") == {
        "faq one.md": ["Parcels are tracked by their waybill or order number."]
    }
    assert await bus.dead_letters(worker.queue) == []


async def test_an_s3_prefix_is_a_folder_not_the_start_of_a_key(
    aws: tuple[Any, str, IngestWorker, MessageBus], index: SqliteKnowledgeIndex
) -> None:
    """``s3://bucket/kb`` is the folder ``kb/``: neither ``kb-internal/`` nor ``kbsecret.md`` is under it."""
    s3, bucket, _, _ = aws
    put_object(s3, bucket, "kb/handbook.md", "# Handbook\n\nLeave is booked in the portal.")
    put_object(s3, bucket, "kb-internal/salaries.md", "# Salaries\n\nThe zyzzyva band pays the most.")
    put_object(s3, bucket, "kbsecret.md", "# Secret\n\nThe zyzzyva vault code.")
    for prefix in ("kb", "kb/"):
        source = S3Source(bucket, prefix, client=s3)
        ingestor = Ingestor(source, index, embed_batch, IngestOptions(dimensions=DIMENSIONS))
        assert [(o.document_id, o.action) for o in await ingestor.sync()] == [("handbook.md", "indexed")]
        assert set(await indexed(index, "anyone")) == {"handbook.md"}
        assert [source.document_id_of(key) for key in ("kb/handbook.md", "kb-internal/salaries.md")] == [
            "handbook.md",
            None,
        ]
        await index.delete_document("handbook.md")
    assert S3Source.from_url("s3://corp/kb", region="us-east-1").prefix == "kb/"


async def test_a_poison_object_is_dead_lettered_with_its_reason(
    aws: tuple[Any, str, IngestWorker, MessageBus], index: SqliteKnowledgeIndex
) -> None:
    s3, bucket, worker, bus = aws
    s3.put_object(
        Bucket=bucket,
        Key="kb/broken.pdf",
        Body=b"%PDF-1.4 broken",
        ContentType="application/pdf",
        Tagging=f"readers={S3_EVERYONE}",
    )
    put_object(s3, bucket, "kb/fine.md", "# Fine\n\nStill indexed.")
    await drain(worker, bus)
    [letter] = await bus.dead_letters(worker.queue)
    assert "broken.pdf" in letter.reason
    assert set(await indexed(index, "anyone")) == {"fine.md"}
