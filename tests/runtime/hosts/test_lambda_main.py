"""``lambda_handler.main``: one function serving the API behind a REST API (v1 proxy events, payload format
1.0, a stage in the path), consuming its task and ingest queues and sweeping its task queue on schedule,
each invocation routed by its event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from task_host_helpers import (
    API_KEY,
    DELEGATING,
    TASK_QUEUE,
    imported_host,
    lapsed_approval,
    message_parts,
    orphan,
    stored,
    submit,
    waiting_messages,
)

from agent_runtime.hosting import SWEEP_EVENT
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex
from agent_runtime.settings import Settings
from agent_runtime.tasks.model import TaskState
from agent_runtime.testing import ScriptedModelServer

INGEST_QUEUE = "knowledge-ingest"
API_ID = "a1b2c3d4e5"
STAGE = "prod"
AUTHORIZER_CONTEXT = {"principalId": "carol", "subject": "carol", "tenant": "t-1", "application": "portal"}
"""What the gateway's authorizer passed on: the runtime reads none of it and authenticates again."""


@pytest.fixture(scope="module")
def host(model_server: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    documents = tmp_path_factory.mktemp("documents")
    (documents / "readers.yaml").write_text('"*": ["*"]\n')
    (documents / "handbook.md").write_text("# Handbook\n\nThe leave allowance is twenty-five days.")
    env = DELEGATING | {  # the orchestrator's function: it delegates, so it sweeps
        "AGENTSTAGE_INGEST_QUEUE": INGEST_QUEUE,
        "AGENTSTAGE_KNOWLEDGE_SOURCE": str(documents),
        "AGENTSTAGE_TELEMETRY_EXPORTER": "emf",
    }
    with imported_host("lambda_handler.py", model_server, tmp_path_factory.mktemp("main"), **env) as (
        module,
        _,
    ):
        yield module
        module.loop.run_until_complete(module.api.state.lifecycle.close())


@pytest.fixture(autouse=True)
def lambda_process_loop(host: ModuleType) -> None:
    """The host's loop is the current one, as in its Lambda process; ``asyncio.run`` in the helpers that
    put tasks in the store and read the index leaves none current, and Mangum runs on the current loop."""
    asyncio.set_event_loop(host.loop)


def rest_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A REST API Lambda proxy event for ``{proxy+}``, as API Gateway sends it after the authorizer allowed
    the call: ``path`` without the stage, ``requestContext.path`` with it."""
    headers = {
        "Accept": "application/json",
        "Host": f"{API_ID}.execute-api.eu-west-1.amazonaws.com",
        "User-Agent": "test",
        "X-Forwarded-For": "192.0.2.10",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    } | (headers or {})
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()}
        if query
        else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "ext-1",
            "requestTime": "01/Jan/2026:00:00:00 +0000",
            "path": f"/{STAGE}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": API_ID,
            "requestTimeEpoch": 1767225600000,
            "requestId": "req-1",
            "identity": {"sourceIp": "192.0.2.10", "userAgent": "test", "apiKey": "key-default"},
            "domainName": f"{API_ID}.execute-api.eu-west-1.amazonaws.com",
            "apiId": API_ID,
            "authorizer": AUTHORIZER_CONTEXT | {"integrationLatency": 12},
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def sqs_record(queue: str, sqs_id: str, body: dict[str, Any], attributes: dict[str, str]) -> dict[str, Any]:
    """One record of an SQS event source mapping's batch from ``queue``."""
    return {
        "messageId": sqs_id,
        "receiptHandle": f"handle-{sqs_id}",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
        "messageAttributes": {
            name: {"stringValue": value, "dataType": "String"} for name, value in attributes.items()
        },
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:eu-west-1:123456789012:{queue}",
        "awsRegion": "eu-west-1",
    }


def s3_notification(key: str) -> dict[str, Any]:
    return {
        "Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "docs"}, "object": {"key": key}}}
        ]
    }


def indexed_documents(settings: Settings) -> set[str]:
    async def read() -> set[str]:
        index = await SqliteKnowledgeIndex.open(settings.sqlite_path, settings.embedding_dimensions)
        try:
            return set(await index.document_hashes())
        finally:
            await index.close()

    return asyncio.run(read())


# -- queues -----------------------------------------------------------------------------------------------


def test_a_batch_of_the_ingest_queue_refreshes_its_documents(host: ModuleType) -> None:
    """Handed to ``tasks``, a document event would fail as a malformed task and be redelivered."""
    batch = {"Records": [sqs_record(INGEST_QUEUE, "sqs-1", s3_notification("handbook.md"), {})]}
    assert host.main(batch, SimpleNamespace()) == {"batchItemFailures": []}
    assert indexed_documents(host.settings) == {"handbook.md"}


@pytest.mark.parametrize("queue", [TASK_QUEUE, "agent-tasks-research"])
def test_a_batch_of_any_other_queue_runs_its_tasks(
    host: ModuleType, model: ScriptedModelServer, queue: str
) -> None:
    """Handed to ``documents``, a task message would fail as "not a document event"."""
    task = submit(host.settings, f"hello from {queue}")
    message_id, body, headers = message_parts(task)
    batch = {"Records": [sqs_record(queue, "sqs-2", body, headers | {"agentstage.message_id": message_id})]}
    assert host.main(batch, SimpleNamespace()) == {"batchItemFailures": []}
    done = stored(host.settings, task.id)
    assert done.state is TaskState.SUCCEEDED and done.result is not None
    assert done.result["answer"] == f"hello from {queue}"


def test_the_sweeps_scheduled_event_sweeps_the_task_queue(host: ModuleType) -> None:
    """Handed to the API, the schedule's event would fail in Mangum as no HTTP event it knows. The sweep
    re-sends an orphaned task and expires a lapsed approval, as a worker loop's does."""
    waiting_messages(host.settings)  # what earlier tests sent, taken off the queue
    lost = orphan(host.settings, "hello from the sweep")
    forgotten = lapsed_approval(host.settings)
    swept = host.main(dict(SWEEP_EVENT), SimpleNamespace())
    assert swept == {"requeued": [lost.id], "expired": [forgotten.id]}
    assert [message.body["task_id"] for message in waiting_messages(host.settings)] == [lost.id]
    expired = stored(host.settings, forgotten.id)
    assert expired.state is TaskState.FAILED and expired.error is not None
    assert expired.error["code"] == "approval_expired"


# -- the API behind a REST API ----------------------------------------------------------------------------


def test_a_rest_api_request_reaches_the_route_of_its_path_without_the_stage(host: ModuleType) -> None:
    response = host.main(rest_event("GET", "/healthz"), SimpleNamespace())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"]) == {"status": "ok"}


def test_the_runtime_authenticates_again_behind_the_gateways_authorizer(host: ModuleType) -> None:
    """``requestContext.authorizer`` names a caller, but without credentials of its own the request is 401."""
    response = host.main(rest_event("GET", "/v1/agents"), SimpleNamespace())
    assert response["statusCode"] == 401, response
    assert json.loads(response["body"])["error"]["code"] == "unauthorized"
    forged = rest_event("GET", "/v1/agents", headers={"Authorization": "Bearer not-the-key"})
    assert host.main(forged, SimpleNamespace())["statusCode"] == 401


def test_an_authenticated_invocation_answers_through_the_rest_api(
    host: ModuleType, model: ScriptedModelServer
) -> None:
    event = rest_event(
        "POST",
        "/v1/agents/assistant/invoke",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        body={"input": "through the gateway"},
    )
    response = host.main(event, SimpleNamespace())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["answer"] == "through the gateway"
    assert response["multiValueHeaders"] == {} and response["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize(("limit", "status"), [("5", 200), ("0", 422)])
def test_query_parameters_reach_the_route(host: ModuleType, limit: str, status: int) -> None:
    event = rest_event(
        "GET", "/v1/conversations", headers={"Authorization": f"Bearer {API_KEY}"}, query={"limit": limit}
    )
    response = host.main(event, SimpleNamespace())
    assert response["statusCode"] == status, response


def emf_metrics(printed: str) -> dict[str, float]:
    """Metric name -> value of the EMF records among ``printed`` lines (one value per name here)."""
    found: dict[str, float] = {}
    for line in printed.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                found[metric["Name"]] = value if isinstance(value, float | int) else sum(value)
    return found


def test_an_invocations_metrics_are_written_before_it_returns(
    host: ModuleType, model: ScriptedModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lambda freezes the instance between events: what an event recorded is printed (as CloudWatch
    embedded-metric lines) before the handler returns, not at some later event."""
    capsys.readouterr()
    event = rest_event(
        "POST",
        "/v1/agents/assistant/invoke",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        body={"input": "count me"},
    )
    assert host.main(event, SimpleNamespace())["statusCode"] == 200
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics.get("Runs") == 1, metrics
    assert metrics.get("InputTokens", 0) > 0, metrics
