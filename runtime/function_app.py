"""Azure Functions host: the runtime's FastAPI app behind one ASGI function, and the task queue's trigger.

Anonymous at the platform level because the runtime authenticates every request itself (API key or JWT);
host.json sets an empty route prefix so the API's paths are the app's paths. The Python v2 model allows
one function app per module, so the Service Bus trigger is a second function on the same ``app``.

An app with ``AGENTSTAGE_TASK_QUEUE`` set (its bus is Service Bus: the foundation's agents) also gets
the trigger, which receives one message of that queue per invocation over an identity-based
connection (app settings ``ServiceBusConnection__fullyQualifiedNamespace``,
``ServiceBusConnection__credential=managedidentity``, ``ServiceBusConnection__clientId``). Returning
completes the message; raising abandons it for redelivery, and the queue's ``maxDeliveryCount`` then
dead-letters it (see :mod:`agent_runtime.hosting` for why that is also the path of poison messages).
"""

import json

import azure.functions as func

from agent_runtime.api import create_app
from agent_runtime.bus.base import ReceivedMessage
from agent_runtime.hosting import PushedTasks
from agent_runtime.settings import Settings
from agent_runtime.tasks.service import worker_queue

settings = Settings()
api = create_app(settings)
tasks = PushedTasks(api.state.lifecycle)
app = func.AsgiFunctionApp(app=api, http_auth_level=func.AuthLevel.ANONYMOUS)


async def run_task(message: func.ServiceBusMessage) -> None:
    await tasks.handle(delivery(message))


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


def delivery(message: func.ServiceBusMessage) -> ReceivedMessage:
    """The trigger's message in the bus contract's shape (headers are its application properties)."""
    try:
        body = json.loads(message.get_body())
    except ValueError:
        body = None
    properties = message.application_properties or {}
    enqueued = message.enqueued_time_utc
    return ReceivedMessage(
        queue=worker_queue(settings),
        message_id=message.message_id or "",
        body=body if isinstance(body, dict) else {"raw": message.get_body().decode("utf-8", "replace")},
        headers={str(name): value for name, value in properties.items() if isinstance(value, str)},
        delivery_count=message.delivery_count or 1,
        enqueued_at=enqueued.timestamp() if enqueued else 0.0,
        lease=None,
    )
