"""The AWS Lambda hosts: Mangum over the same app, driven with an API Gateway HTTP API (v2) event, and the
SQS consumer of the task queue, driven with hand-built SQS events in the documented shape; and the
orchestrator's function given the constant event of the EventBridge schedule that sweeps the task queues."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from dynamodb_support import DynamoDB
from runtime_helpers import PLANTED
from servers import MotoServer
from task_host_helpers import (
    API_KEY,
    DELEGATE,
    DELEGATE_QUEUE,
    DELEGATING,
    TASK_QUEUE,
    TENANT_KEYS,
    chat_body,
    imported_host,
    invoke_body,
    mark_running_elsewhere,
    message_parts,
    orphan,
    stored,
    streamed_text,
    submit,
    two_tenants_env,
    waiting_messages,
)
from token_ledger import TokenLedger

from agent_runtime.bus.base import ReceivedMessage
from agent_runtime.governance.budgets import Budgets
from agent_runtime.hosting import SWEEP_EVENT
from agent_runtime.settings import Settings
from agent_runtime.tasks.model import TaskRecord, TaskState
from agent_runtime.testing import ScriptedModelServer

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTSTAGE_SQLITE_PATH", str(tmp_path_factory.mktemp("state") / "state.db"))
        spec = importlib.util.spec_from_file_location("lambda_handler", RUNTIME / "lambda_handler.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def _http_api_event(method: str, path: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.eu-west-1.amazonaws.com", "accept": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "test",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }


def _chat_event(text: str, *, stream: bool) -> dict[str, Any]:
    """A chat completion request with the API key, as API Gateway hands it over."""
    event = _http_api_event("POST", "/v1/chat/completions")
    event["headers"] |= {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    event["body"] = chat_body(text, stream=stream)
    return event


def _context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="agent", aws_request_id="req-1", get_remaining_time_in_millis=lambda: 30_000
    )


def test_healthz_answers_200(host: ModuleType) -> None:
    response = host.handler(_http_api_event("GET", "/healthz"), _context())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"]) == {"status": "ok"}


def test_runtime_auth_applies(host: ModuleType) -> None:
    response = host.handler(_http_api_event("GET", "/v1/agents"), _context())
    assert response["statusCode"] == 401, response


# -- the task queue's SQS consumer -------------------------------------------------------------------


@pytest.fixture(scope="module")
def task_host(
    model_server: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModuleType, Settings]]:
    with imported_host("lambda_handler.py", model_server, tmp_path_factory.mktemp("tasks")) as host:
        yield host
        module, _ = host
        module.loop.run_until_complete(module.api.state.lifecycle.close())


def _sqs_record(sqs_id: str, body: dict[str, Any] | str, attributes: dict[str, str]) -> dict[str, Any]:
    """One record of an SQS event, in the shape Lambda's event source mapping delivers it."""
    return {
        "messageId": sqs_id,
        "receiptHandle": f"handle-{sqs_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1767225600000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1767225600001",
        },
        "messageAttributes": {
            name: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}
            for name, value in attributes.items()
        },
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:eu-west-1:123456789012:{TASK_QUEUE}",
        "awsRegion": "eu-west-1",
    }


def _task_record(sqs_id: str, task: TaskRecord) -> dict[str, Any]:
    """The record of a task's message as the SQS bus adapter sends it (its id in an attribute)."""
    message_id, body, headers = message_parts(task)
    return _sqs_record(sqs_id, body, headers | {"agentstage.message_id": message_id})


def test_every_request_of_a_warm_function_reaches_the_model(
    task_host: tuple[ModuleType, Settings], model: ScriptedModelServer
) -> None:
    """The opened services outlive each invocation: a per-request ASGI shutdown would close the model client."""
    module, _ = task_host
    for text in ("first", "second"):
        event = _http_api_event("POST", "/v1/agents/assistant/invoke")
        event["headers"] |= {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
        event["body"] = json.dumps({"input": text})
        response = module.handler(event, _context())
        assert response["statusCode"] == 200, response
        assert json.loads(response["body"])["answer"] == text
    assert not module.api.state.lifecycle.assembly.http.is_closed, "the tools' shared client is still open"


@pytest.fixture
def budgeted_host(model_server: ScriptedModelServer, tmp_path: Path) -> Iterator[tuple[ModuleType, Settings]]:
    budgets = [{"name": "tokens", "scope": "tenant", "window_seconds": 3600, "tokens": 10**6}]
    with imported_host(
        "lambda_handler.py", model_server, tmp_path, AGENTSTAGE_BUDGETS=json.dumps(budgets)
    ) as host:
        yield host
        module, _ = host
        module.loop.run_until_complete(module.api.state.lifecycle.close())


def test_an_invocation_returns_only_once_its_budget_settlement_is_written(
    budgeted_host: tuple[ModuleType, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settlement is written after the answer (agent_runtime.answer_first), but Lambda freezes the
    process when the handler returns: Mangum returns when the app does, which waits for it."""
    module, settings = budgeted_host
    written = Budgets._settle

    async def slow(self: Budgets, *args: Any) -> None:
        await asyncio.sleep(0.2)
        await written(self, *args)

    monkeypatch.setattr(Budgets, "_settle", slow)
    for stream in (False, True):
        response = module.handler(_chat_event("settle me", stream=stream), _context())
        assert response["statusCode"] == 200, response
        ledger = TokenLedger(settings.sqlite_path)
        assert not ledger.held(), "the hold was settled before the handler returned"
        assert ledger.spent() > 0


def test_a_streamed_answer_leaves_the_function_redacted(
    task_host: tuple[ModuleType, Settings], model: ScriptedModelServer
) -> None:
    """Mangum buffers the stream into one response; the planted values, streamed 1-4 characters at a time
    by the model, are redacted in it exactly as in the plain answer."""
    module, _ = task_host
    bodies = {}
    for stream in (False, True):
        response = module.handler(_chat_event("leak", stream=stream), _context())
        assert response["statusCode"] == 200, response
        bodies[stream] = response["body"]
    plain = json.loads(bodies[False])["choices"][0]["message"]["content"]
    assert "[REDACTED:api_key]" in plain and streamed_text(bodies[True]) == plain
    assert not [kind for kind, value in PLANTED.items() if value in bodies[True]]


def test_a_conversation_id_reaches_only_its_owners_history(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    """The hosts authenticate through the same API: another tenant's caller naming Alice's conversation
    replays none of it."""
    alice, bob = list(TENANT_KEYS)
    with imported_host("lambda_handler.py", model, tmp_path, **two_tenants_env()) as (module, _):

        def invoke(key: str, text: str, conversation_id: str | None = None) -> dict[str, Any]:
            event = _http_api_event("POST", "/v1/agents/assistant/invoke")
            event["headers"] |= {"authorization": f"Bearer {key}", "content-type": "application/json"}
            event["body"] = invoke_body(text, conversation_id)
            response = module.handler(event, _context())
            assert response["statusCode"] == 200, response
            return json.loads(response["body"])

        conversation = invoke(alice, "alice's note 1618")["conversation_id"]
        invoke(bob, "what was noted?", conversation)
        assert "1618" not in json.dumps(model.requests[-1]["messages"])
        invoke(alice, "and?", conversation)
        assert "1618" in json.dumps(model.requests[-1]["messages"])
        assert "what was noted" not in json.dumps(model.requests[-1]["messages"])
        module.loop.run_until_complete(module.api.state.lifecycle.close())


def test_one_failed_record_does_not_redeliver_the_batch(
    task_host: tuple[ModuleType, Settings], model: ScriptedModelServer
) -> None:
    module, settings = task_host
    good, busy = submit(settings, "hello from sqs"), submit(settings, "busy")
    mark_running_elsewhere(settings, busy.id)
    records = [
        _task_record("sqs-1", good),
        _sqs_record("sqs-2", "not json at all", {}),
        _task_record("sqs-3", busy),
    ]
    response = module.tasks({"Records": records}, _context())
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}, {"itemIdentifier": "sqs-3"}]}
    done = stored(settings, good.id)
    assert done.state is TaskState.SUCCEEDED and done.result is not None
    assert done.result["answer"] == "hello from sqs"
    assert module.tasks({"Records": []}, _context()) == {"batchItemFailures": []}


def test_a_body_nested_too_deeply_fails_its_record_only(
    task_host: tuple[ModuleType, Settings], model: ScriptedModelServer
) -> None:
    """JSON's parser gives up on it with RecursionError, not ValueError: the record is poison like any body
    that is no task message, and the rest of its batch runs."""
    module, settings = task_host
    good = submit(settings, "hello from sqs")
    records = [_task_record("sqs-1", good), _sqs_record("sqs-2", "[" * 100_000, {})]
    response = module.tasks({"Records": records}, _context())
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}]}
    assert stored(settings, good.id).state is TaskState.SUCCEEDED


def _received_record(sqs_id: str, message: ReceivedMessage) -> dict[str, Any]:
    """The record the event source mapping delivers for a message the bus adapter sent."""
    return _sqs_record(
        sqs_id, dict(message.body), {**message.headers, "agentstage.message_id": message.message_id}
    )


@pytest.mark.slow
def test_the_scheduled_event_sends_orphaned_tasks_their_messages_on_sqs(
    model: ScriptedModelServer, tmp_path: Path, moto: MotoServer, dynamodb: DynamoDB
) -> None:
    """The API wrote tasks to DynamoDB and died before sending their messages to SQS: no worker loop runs
    on Lambda, the EventBridge schedule's event makes the orchestrator's function sweep its queue and its
    delegate's instead, and the message it sends runs the task through the queue's event source mapping."""
    aws = DELEGATING | {
        "AGENTSTAGE_STATE_BACKEND": "dynamodb",
        "AGENTSTAGE_DYNAMODB_CONVERSATIONS_TABLE": dynamodb.create("conversations"),
        "AGENTSTAGE_DYNAMODB_TASKS_TABLE": dynamodb.create("tasks"),
        "AGENTSTAGE_BUS_BACKEND": "sqs",
        "AGENTSTAGE_SQS_ENDPOINT_URL": moto.endpoint_url,
        "AGENTSTAGE_AWS_REGION": moto.region,
        "AGENTSTAGE_BUS_CREATE_QUEUES": "true",
    }
    with imported_host("lambda_handler.py", model, tmp_path, **aws) as (module, settings):
        try:
            lost = orphan(settings, "hello from the sweep")
            delegated = orphan(settings, "for the research agent", DELEGATE, DELEGATE_QUEUE)
            fresh = submit(settings, "sent as usual")  # queued a moment ago, with its message
            assert [m.body["task_id"] for m in waiting_messages(settings)] == [fresh.id]

            assert module.main(dict(SWEEP_EVENT), _context()) == {
                "requeued": [lost.id, delegated.id],
                "expired": [],
            }

            [message] = waiting_messages(settings)
            assert message.body["task_id"] == lost.id, "only the orphans are sent again"
            [elsewhere] = waiting_messages(settings, DELEGATE_QUEUE)
            assert elsewhere.body["task_id"] == delegated.id, "the delegate's queue is swept too"
            response = module.tasks({"Records": [_received_record("sqs-1", message)]}, _context())
            assert response == {"batchItemFailures": []}
            done = stored(settings, lost.id)
            assert done.state is TaskState.SUCCEEDED and done.result is not None
            assert done.result["answer"] == "hello from the sweep"
            assert stored(settings, fresh.id).state is TaskState.QUEUED
            assert module.main(dict(SWEEP_EVENT), _context()) == {"requeued": [], "expired": []}
        finally:
            module.loop.run_until_complete(module.api.state.lifecycle.close())


FOREIGN_EVENTS = [
    {"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": "handbook.md"}}}]},
    {"Records": [{"eventSource": "aws:sqs", "body": "{}"}, {"eventSource": "aws:s3"}]},
    {"Records": "not a list"},
    {"agentstage": "sweep", "detail": {}},
    {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
    {},
    ["a", "list"],
    "a string",
]
"""Events none of the functions takes: a bucket's own notification, malformed batches, a schedule's event
that is not the sweep's, a direct invocation's payloads."""


@pytest.mark.parametrize("event", [*FOREIGN_EVENTS, {"agentstage": "sweep"}], ids=repr)
@pytest.mark.parametrize(
    ("handler", "takes"),
    [("tasks", "SQS batches of its task queue"), ("documents", "SQS batches of its queue of the documents")],
)
def test_a_queue_consumer_refuses_an_event_it_does_not_take_by_name(
    task_host: tuple[ModuleType, Settings], handler: str, takes: str, event: Any
) -> None:
    module, _ = task_host
    with pytest.raises(
        module.UnrecognisedEvent, match=rf"^lambda_handler\.{handler} takes {takes}.*; this event"
    ):
        getattr(module, handler)(event, _context())


@pytest.mark.parametrize("event", FOREIGN_EVENTS, ids=repr)
@pytest.mark.parametrize("handler", ["handler", "main"])
def test_the_api_refuses_an_event_that_is_no_http_request_by_name(
    task_host: tuple[ModuleType, Settings], handler: str, event: Any
) -> None:
    """Mangum's own error ("unable to infer a handler") named neither the function nor what it takes."""
    module, _ = task_host
    with pytest.raises(module.UnrecognisedEvent) as refused:
        getattr(module, handler)(event, _context())
    message = str(refused.value)
    assert message.startswith(f"lambda_handler.{handler} takes ")
    assert "HTTP events (API Gateway REST or HTTP API, ALB, function URL)" in message
    assert ("SQS batches of its queues and the sweep's scheduled event" in message) == (handler == "main")
    assert "check what invokes the function" in message


def test_a_lambda_runtime_too_old_for_bedrock_guardrails_is_refused_at_start(host: ModuleType) -> None:
    host.require_botocore("1.40.0")
    with pytest.raises(RuntimeError, match=r"botocore is 1\.34\.100; agentstage needs >= 1\.34\.129"):
        host.require_botocore("1.34.100")
