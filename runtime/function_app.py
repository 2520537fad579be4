"""Azure Functions host: the runtime's FastAPI app behind one ASGI function, and the task queue's trigger.

Anonymous at the platform level because the runtime authenticates every request itself (API key or JWT);
host.json sets an empty route prefix so the API's paths are the app's paths. The Python v2 model allows
one function app per module, so the Service Bus triggers are further functions on the same ``app``.

An app with ``AGENTSTAGE_TASK_QUEUE`` set (its bus is Service Bus: the foundation's agents) also gets
the trigger, which receives one message of that queue per invocation over an identity-based
connection (app settings ``ServiceBusConnection__fullyQualifiedNamespace``,
``ServiceBusConnection__credential=managedidentity``, ``ServiceBusConnection__clientId``). Returning
completes the message; raising abandons it for redelivery, and the queue's ``maxDeliveryCount`` then
dead-letters it (see :mod:`agent_runtime.hosting` for why that is also the path of poison messages).
The orchestrator's app (a task queue and ``AGENTSTAGE_AGENT_QUEUES``) also gets a timer trigger, every
minute, that sweeps its queue and its delegates' as a worker loop would (:meth:`agent_runtime.hosting.
PushedTasks.sweep`: tasks queued with no message get one); the host runs one occurrence at a time across
the app's instances (a blob lease in ``AzureWebJobsStorage``).

An app with ``AGENTSTAGE_INGEST_QUEUE`` set (the knowledge layer's ingestion worker) gets a trigger on that
queue of Event Grid blob events, over the same identity-based connection; each message refreshes the
documents it names in the knowledge index (:mod:`agent_runtime.knowledge.service`).
"""

import json

import azure.functions as func

from agent_runtime.api import create_app
from agent_runtime.bus.base import ReceivedMessage
from agent_runtime.hosting import PushedTasks, swept_queues
from agent_runtime.knowledge.service import PushedDocuments
from agent_runtime.settings import Settings
from agent_runtime.startup import configured
from agent_runtime.tasks.service import worker_queue

SWEEP_SCHEDULE = "0 * * * * *"
"""NCRONTAB (with seconds): at second 0 of every minute, as often as a worker loop sweeps
(``SWEEP_SECONDS`` of agent_runtime.tasks.worker)."""

# A settings mistake stops the worker's indexing with one line naming it (agent_runtime.startup): the host
# logs what escapes here, and pydantic's own message would quote the settings' values.
settings = configured(Settings)
api = configured(lambda: create_app(settings))
tasks = PushedTasks(api.state.lifecycle)
documents = PushedDocuments(api.state.lifecycle)
app = func.AsgiFunctionApp(app=api, http_auth_level=func.AuthLevel.ANONYMOUS)


async def run_task(message: func.ServiceBusMessage) -> None:
    await tasks.handle(delivery(message, worker_queue(settings)))


async def sweep_tasks(timer: func.TimerRequest) -> None:
    await tasks.sweep()  # logs each task it sends again


async def ingest_documents(message: func.ServiceBusMessage) -> None:
    await documents.handle(delivery(message, settings.ingest_queue or ""))


# Only apps with a task queue get the trigger: an unresolvable %AGENTSTAGE_TASK_QUEUE% would put the
# function in error on hosts without one (the pilot's single agent has no queue).
task_trigger = (
    app.function_name("run_task")(
        app.service_bus_queue_trigger(
            arg_name="message", queue_name="%AGENTSTAGE_TASK_QUEUE%", connection="ServiceBusConnection"
        )(run_task)
    )
    if settings.task_queue
    else None
)
# No catch-up after downtime (use_monitor off): the next occurrence sweeps whatever a missed one would have,
# without a schedule-status blob written every minute.
sweep_trigger = (
    app.function_name("sweep_tasks")(
        app.timer_trigger(arg_name="timer", schedule=SWEEP_SCHEDULE, run_on_startup=False, use_monitor=False)(
            sweep_tasks
        )
    )
    if swept_queues(settings)
    else None
)
ingest_trigger = (
    app.function_name("ingest_documents")(
        app.service_bus_queue_trigger(
            arg_name="message", queue_name="%AGENTSTAGE_INGEST_QUEUE%", connection="ServiceBusConnection"
        )(ingest_documents)
    )
    if settings.ingest_queue
    else None
)


def delivery(message: func.ServiceBusMessage, queue: str) -> ReceivedMessage:
    """The trigger's message in the bus contract's shape (headers are its application properties)."""
    try:
        body = json.loads(message.get_body())
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse: not a task's either
        body = None
    properties = message.application_properties or {}
    enqueued = message.enqueued_time_utc
    return ReceivedMessage(
        queue=queue,
        message_id=message.message_id or "",
        body=body if isinstance(body, dict) else {"raw": message.get_body().decode("utf-8", "replace")},
        headers={str(name): value for name, value in properties.items() if isinstance(value, str)},
        delivery_count=message.delivery_count or 1,
        enqueued_at=enqueued.timestamp() if enqueued else 0.0,
        lease=None,
    )
