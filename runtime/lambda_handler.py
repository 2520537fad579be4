"""AWS Lambda hosts: the runtime's FastAPI app behind Mangum, and the task queue's SQS consumer.

Secret settings come from the Secrets Manager secret named by ``AGENTSTAGE_SETTINGS_SECRET_ARN``, read once
at cold start (:mod:`agent_runtime.settings_secret`).

- ``lambda_handler.handler``: the API (API Gateway REST and HTTP APIs, ALB, function URLs).
- ``lambda_handler.tasks``: an SQS event source mapping on ``AGENTSTAGE_TASK_QUEUE`` with
  ``FunctionResponseTypes: ["ReportBatchItemFailures"]``. Each record is one task message; the handler
  returns the failed ones as ``batchItemFailures``, so only those are delivered again (and, after the
  queue's ``maxReceiveCount``, moved to its dead-letter queue) while the rest of the batch is deleted.
  See :mod:`agent_runtime.hosting` for which failures those are.
- ``lambda_handler.documents``: an SQS event source mapping on ``AGENTSTAGE_INGEST_QUEUE``, the S3 event
  notifications of the knowledge layer's documents bucket, reported the same way; each record refreshes
  the documents it names (:mod:`agent_runtime.knowledge.service`).
- ``lambda_handler.main``: all of them in one function (the foundation's orchestrator serves the API and
  consumes its queues): an SQS batch of ``AGENTSTAGE_INGEST_QUEUE`` goes to ``documents``, one of any
  other queue to ``tasks``, and every other event to the API; but the constant event
  ``{"agentstage": "sweep"}``, which an EventBridge schedule sends every minute, sweeps the queues it
  delegates to, as a worker loop would (tasks queued with no message get one; approvals no reviewer decided
  in time expire), and returns the ids of the tasks it acted on.

Each handler refuses an event it does not take with :class:`UnrecognisedEvent`, whose message names the
handler, what it takes and the event's keys: a trigger wired to the wrong function fails its invocations
visibly, instead of ``tasks`` or ``documents`` acknowledging a foreign batch as handled or Mangum's
"unable to infer a handler" reaching the log.

All handlers run on the one event loop of the process, which the opened services are bound to.
"""

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import botocore
from mangum import Mangum

from agent_runtime.settings_secret import load_settings_secret
from agent_runtime.startup import configured

MINIMUM_BOTOCORE = (1, 34, 129)
"""Guardrails in Converse. The package uses the Lambda runtime's own boto3 (see requirements-lambda.txt)."""


def require_botocore(version: str = botocore.__version__) -> None:
    """Refuse to start on a Lambda runtime whose botocore cannot send guardrails with Converse."""
    found = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    if found < MINIMUM_BOTOCORE:
        raise RuntimeError(
            f"this Lambda runtime's botocore is {version}; agentstage needs >= "
            f"{'.'.join(map(str, MINIMUM_BOTOCORE))} (Bedrock guardrails in Converse): use a current python3.11 "
            "runtime, or add boto3 to requirements-lambda.txt"
        )


require_botocore()
# A settings mistake stops the cold start with one line naming it (agent_runtime.startup): the runtime logs
# what escapes here, and pydantic's own message would quote the settings' values.
configured(load_settings_secret)  # before the settings are imported: they read the directory it fills

from agent_runtime.api import create_app
from agent_runtime.bus.base import ReceivedMessage
from agent_runtime.hosting import SWEEP_EVENT, PushedTasks, handle_all
from agent_runtime.knowledge.service import PushedDocuments
from agent_runtime.settings import Settings
from agent_runtime.tasks.model import TaskState

T = TypeVar("T")
log = logging.getLogger("agentstage.lambda")
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)  # Mangum runs each request on the current loop: the same one

settings = configured(Settings)
api = configured(lambda: create_app(settings))
# Mangum would run the ASGI startup and shutdown around every invocation, closing the shared clients
# after the first; without it the services open on first use and live as long as the warm process.
_http = Mangum(api, lifespan="off")
_tasks = PushedTasks(api.state.lifecycle)
_documents = PushedDocuments(api.state.lifecycle)
_telemetry = api.state.lifecycle.assembly.telemetry


class UnrecognisedEvent(Exception):
    """A handler was invoked with an event it does not take (see the module's docstring)."""

    def __init__(self, handler: str, takes: str, event: object) -> None:
        shown = f"keys: {sorted(map(str, event))[:10]}" if isinstance(event, dict) else type(event).__name__
        super().__init__(
            f"lambda_handler.{handler} takes {takes}; this event ({shown}) is none: check what invokes the "
            "function"
        )


def _flushed(entry: Callable[[dict[str, Any], Any], T]) -> Callable[[dict[str, Any], Any], T]:
    """``entry`` with the invocation's telemetry written out before it returns: Lambda freezes the instance
    between events, so metrics still buffered then would wait for the next event, or be lost."""

    @functools.wraps(entry)
    def flushed(event: dict[str, Any], context: Any) -> T:
        try:
            return entry(event, context)
        finally:
            _telemetry.flush()

    return flushed


@_flushed
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API (API Gateway REST or HTTP API, ALB, function URLs)."""
    return _api(event, context, "handler")


@_flushed
def main(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Route one invocation of a function that serves the API and consumes queues by what invoked it: an
    event source mapping's batch comes from a single queue, named last in its records' ``eventSourceARN``."""
    if event == SWEEP_EVENT:
        return _sweep()
    if _is_sqs_batch(event):
        records = event["Records"]
        if records and str(records[0].get("eventSourceARN", "")).rsplit(":", 1)[-1] == settings.ingest_queue:
            return _batch(event, "document event", _documents.handle)
        return _batch(event, "task", _tasks.handle)
    return _api(event, context, "main", also="SQS batches of its queues and the sweep's scheduled event")


@_flushed
def tasks(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Run each SQS record's task; report the records whose delivery failed."""
    if not _is_sqs_batch(event):
        raise UnrecognisedEvent("tasks", "SQS batches of its task queue", event)
    return _batch(event, "task", _tasks.handle)


def _is_sqs_batch(event: object) -> bool:
    """An SQS event source mapping's batch: a list of SQS records under ``Records`` (never empty from SQS)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and all(
        isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records
    )


def _api(event: object, context: Any, handler: str, also: str = "") -> dict[str, Any]:
    """The API's answer to an HTTP event of a kind Mangum serves; any other event is refused by name."""
    try:
        _http.infer(event, context)  # type: ignore[arg-type]
    except (RuntimeError, AttributeError, KeyError, TypeError):
        takes = "HTTP events (API Gateway REST or HTTP API, ALB, function URL)"
        raise UnrecognisedEvent(handler, f"{also} and {takes}" if also else takes, event) from None
    return _http(event, context)  # type: ignore[arg-type]


def _sweep() -> dict[str, list[str]]:
    """One sweep (:meth:`~agent_runtime.hosting.PushedTasks.sweep`): the ids of the tasks whose message it
    sent again (``requeued``) and of those whose approval it expired (``expired``)."""
    swept = loop.run_until_complete(_tasks.sweep())
    return {
        "requeued": [record.id for record in swept if record.state is TaskState.QUEUED],
        "expired": [record.id for record in swept if record.state is not TaskState.QUEUED],
    }


@_flushed
def documents(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Refresh the documents each SQS record names; report the records whose delivery failed."""
    if not _is_sqs_batch(event):
        raise UnrecognisedEvent(
            "documents", "SQS batches of its queue of the documents bucket's events", event
        )
    return _batch(event, "document event", _documents.handle)


def _batch(
    event: dict[str, Any], what: str, handle: Callable[[ReceivedMessage], Awaitable[object]]
) -> dict[str, list[dict[str, str]]]:
    """Each record handled concurrently; the failed ones reported as ``batchItemFailures`` (partial batch
    response), so only those are delivered again."""
    records = event.get("Records", [])
    failures = loop.run_until_complete(handle_all([delivery(record) for record in records], handle))
    failed = []
    for record, failure in zip(records, failures, strict=True):
        if failure is not None:
            log.warning("%s %s failed: %s: %s", what, record["messageId"], type(failure).__name__, failure)
            failed.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failed}


def delivery(record: dict[str, Any]) -> ReceivedMessage:
    """An SQS event record in the bus contract's shape: string message attributes are the headers (the
    bus adapter's own ``agentstage.*`` attributes excepted; its message id is the message's id)."""
    attributes = record.get("messageAttributes") or {}
    strings = {name: value["stringValue"] for name, value in attributes.items() if "stringValue" in value}
    try:
        body = json.loads(record["body"])
    # RecursionError: nested too deeply to parse, a body no more a task's than one that is no JSON; raised
    # here, it would fail the whole batch, every healthy record with it.
    except (ValueError, RecursionError):
        body = None
    system = record.get("attributes") or {}
    return ReceivedMessage(
        queue=record.get("eventSourceARN", "").rsplit(":", 1)[-1],
        message_id=strings.get("agentstage.message_id", record["messageId"]),
        body=body if isinstance(body, dict) else {"raw": record["body"]},
        headers={name: value for name, value in strings.items() if not name.startswith("agentstage.")},
        delivery_count=int(system.get("ApproximateReceiveCount", 1)),
        enqueued_at=int(system.get("SentTimestamp", 0)) / 1000,
        lease=None,
    )
