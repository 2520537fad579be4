"""The ingestion worker on the serverless hosts: the Functions Service Bus trigger on the ingest queue and
the Lambda SQS handler. Documents come from a local folder standing in for the container or bucket (the
emulator tests run the cloud sources); each delivery refreshes the documents it names, and what can never
be ingested fails its delivery with the reason, so the platform dead-letters it."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from azure.functions.servicebus import ServiceBusMessage
from task_host_helpers import imported_host

from agent_runtime.hosting import PoisonMessage
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex
from agent_runtime.settings import Settings
from agent_runtime.testing import ScriptedModelServer

INGEST_QUEUE = "knowledge-ingest"


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("documents")
    (folder / "readers.yaml").write_text('"*": ["*"]\n')
    (folder / "handbook.md").write_text("# Handbook\n\nThe leave allowance is twenty-five days.")
    (folder / "deck.pptx").write_bytes(b"PK\x03\x04 not a supported document")
    return folder


def host_env(documents: Path) -> dict[str, str]:
    return {"AGENTSTAGE_INGEST_QUEUE": INGEST_QUEUE, "AGENTSTAGE_KNOWLEDGE_SOURCE": str(documents)}


def blob_event(name: str) -> dict[str, Any]:
    return {
        "subject": f"/blobServices/default/containers/documents/blobs/{name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": "1",
        "data": {},
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": "2026-12-04T10:00:00Z",
        "topic": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/docs",
    }


def indexed_documents(settings: Settings) -> set[str]:
    async def read() -> set[str]:
        index = await SqliteKnowledgeIndex.open(settings.sqlite_path, settings.embedding_dimensions)
        try:
            return set(await index.document_hashes())
        finally:
            await index.close()

    return asyncio.run(read())


# -- Azure Functions ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def function_host(
    model_server: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory, documents: Path
) -> Iterator[tuple[ModuleType, Settings, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    state = tmp_path_factory.mktemp("function-ingest")
    with imported_host("function_app.py", model_server, state, **host_env(documents)) as (module, settings):
        yield module, settings, loop
        loop.run_until_complete(module.api.state.lifecycle.close())
    loop.close()


def deliver(host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop], body: Any) -> None:
    module, _, loop = host
    message = ServiceBusMessage(
        body=(body if isinstance(body, str) else json.dumps(body)).encode(),
        message_id="m-1",
        application_properties={},
        user_properties={},
        delivery_count=1,
        enqueued_time_utc=datetime.datetime.now(datetime.UTC),
    )
    loop.run_until_complete(module.ingest_trigger.build().get_user_function()(message))


def test_the_ingest_trigger_reads_the_ingest_queue_over_an_identity_connection(
    function_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop],
) -> None:
    module, _, _ = function_host
    names = [function.get_function_name() for function in module.app.get_functions()]
    assert names == ["http_app_func", "run_task", "ingest_documents"]
    binding = module.ingest_trigger.build().get_trigger()
    assert (binding.get_binding_name(), binding.queue_name, binding.connection) == (
        "serviceBusTrigger",
        "%AGENTSTAGE_INGEST_QUEUE%",
        "ServiceBusConnection",
    )


def test_a_blob_event_indexes_its_document_and_a_poison_one_fails_with_the_reason(
    function_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop],
) -> None:
    _, settings, _ = function_host
    deliver(function_host, blob_event("handbook.md"))
    assert indexed_documents(settings) == {"handbook.md"}
    with pytest.raises(PoisonMessage, match=r"deck\.pptx: .*unsupported"):
        deliver(function_host, blob_event("deck.pptx"))
    with pytest.raises(PoisonMessage, match="not a document event"):
        deliver(function_host, {"hello": "world"})
    assert indexed_documents(settings) == {"handbook.md"}


# -- AWS Lambda ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lambda_host(
    model_server: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory, documents: Path
) -> Iterator[tuple[ModuleType, Settings]]:
    state = tmp_path_factory.mktemp("lambda-ingest")
    with imported_host("lambda_handler.py", model_server, state, **host_env(documents)) as host:
        yield host
        module, _ = host
        module.loop.run_until_complete(module.api.state.lifecycle.close())


def s3_record(sqs_id: str, key: str) -> dict[str, Any]:
    notification = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "documents"}, "object": {"key": key}},
            }
        ]
    }
    return {
        "messageId": sqs_id,
        "receiptHandle": f"handle-{sqs_id}",
        "body": json.dumps(notification),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:eu-west-1:123456789012:{INGEST_QUEUE}",
    }


def test_the_lambda_documents_handler_reports_only_the_poison_records(
    lambda_host: tuple[ModuleType, Settings],
) -> None:
    module, settings = lambda_host
    records = [s3_record("sqs-1", "handbook.md"), s3_record("sqs-2", "deck.pptx")]
    response = module.documents({"Records": records}, SimpleNamespace())
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}]}
    assert indexed_documents(settings) == {"handbook.md"}
