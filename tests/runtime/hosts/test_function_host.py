"""The Azure Functions host: one anonymous ASGI function serving the runtime's API, the Service Bus
trigger running the task queue's messages and the timer that sweeps that queue, each called the way the
Functions worker calls them."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest
from runtime_helpers import PLANTED
from task_host_helpers import (
    API_KEY,
    DELEGATE,
    DELEGATE_QUEUE,
    DELEGATING,
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

from agent_runtime.hosting import PoisonMessage, Redeliver
from agent_runtime.settings import Settings
from agent_runtime.tasks.model import TASK_MESSAGE_KIND, TaskState
from agent_runtime.testing import ScriptedModelServer

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """``runtime/function_app.py`` imported as the worker imports it, with its state in a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTSTAGE_SQLITE_PATH", str(tmp_path_factory.mktemp("state") / "state.db"))
        spec = importlib.util.spec_from_file_location("function_app", RUNTIME / "function_app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(scope="module")
def function(host: ModuleType) -> func.decorators.core.Function:
    functions = host.app.get_functions()  # may be called once per app
    assert [f.get_function_name() for f in functions] == ["http_app_func"], "no task queue: no trigger"
    return functions[0]


def _call(
    host: ModuleType, function: func.decorators.core.Function, request: func.HttpRequest
) -> func.HttpResponse:
    async def invoke() -> func.HttpResponse:
        response = await function.get_user_function()(request, None)
        # Shut the ASGI lifespan down in the loop that started it; __del__ would try again in a new loop.
        await host.app.middleware.notify_shutdown()
        host.app.startup_task_done = False
        return response

    return asyncio.run(invoke())


def test_module_defines_exactly_one_asgi_function_app(host: ModuleType) -> None:
    apps = [
        value for value in vars(host).values() if isinstance(value, func.FunctionApp | func.AsgiFunctionApp)
    ]
    assert len(apps) == 1 and isinstance(apps[0], func.AsgiFunctionApp)


def test_function_is_anonymous_and_routes_everything(function: func.decorators.core.Function) -> None:
    trigger = function.get_trigger()
    assert trigger.auth_level == func.AuthLevel.ANONYMOUS, "the runtime authenticates requests itself"
    assert trigger.route == "/{*route}"


def test_healthz_answers_200(host: ModuleType, function: func.decorators.core.Function) -> None:
    request = func.HttpRequest(
        method="GET", url="https://app.azurewebsites.net/healthz", headers={}, body=b""
    )
    response = _call(host, function, request)
    assert response.status_code == 200, response.get_body()
    assert json.loads(response.get_body()) == {"status": "ok"}


def test_runtime_auth_still_applies_behind_an_anonymous_function(
    host: ModuleType, function: func.decorators.core.Function
) -> None:
    request = func.HttpRequest(
        method="GET", url="https://app.azurewebsites.net/v1/agents", headers={}, body=b""
    )
    response = _call(host, function, request)
    assert response.status_code == 401, response.get_body()


def test_a_streamed_answer_leaves_the_function_redacted(model: ScriptedModelServer, tmp_path: Path) -> None:
    """The Functions host buffers the stream into one response; the planted values, streamed 1-4 characters
    at a time by the model, are redacted in it exactly as in the plain answer."""
    with imported_host("function_app.py", model, tmp_path) as (module, _):
        [function] = [f for f in module.app.get_functions() if f.get_function_name() == "http_app_func"]
        bodies = {}
        for stream in (False, True):
            request = func.HttpRequest(
                method="POST",
                url="https://app.azurewebsites.net/v1/chat/completions",
                headers={"authorization": f"Bearer {API_KEY}", "content-type": "application/json"},
                body=chat_body("leak", stream=stream).encode(),
            )
            response = _call(module, function, request)
            assert response.status_code == 200, response.get_body()
            bodies[stream] = response.get_body().decode()
    plain = json.loads(bodies[False])["choices"][0]["message"]["content"]
    assert "[REDACTED:api_key]" in plain and streamed_text(bodies[True]) == plain
    assert not [kind for kind, value in PLANTED.items() if value in bodies[True]]


def test_a_conversation_id_reaches_only_its_owners_history(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    """The host authenticates through the same API: another tenant's caller naming Alice's conversation
    replays none of it. The requests share one event loop, as on the Functions worker."""
    alice, bob = list(TENANT_KEYS)
    with imported_host("function_app.py", model, tmp_path, **two_tenants_env()) as (module, _):
        [function] = [f for f in module.app.get_functions() if f.get_function_name() == "http_app_func"]

        async def invoke(key: str, text: str, conversation_id: str | None = None) -> dict[str, Any]:
            request = func.HttpRequest(
                method="POST",
                url="https://app.azurewebsites.net/v1/agents/assistant/invoke",
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
                body=invoke_body(text, conversation_id).encode(),
            )
            response = await function.get_user_function()(request, None)
            assert response.status_code == 200, response.get_body()
            return json.loads(response.get_body())

        async def scenario() -> list[str]:
            conversation = (await invoke(alice, "alice's note 1618"))["conversation_id"]
            await invoke(bob, "what was noted?", conversation)
            bobs = json.dumps(model.requests[-1]["messages"])
            await invoke(alice, "and?", conversation)
            await module.app.middleware.notify_shutdown()
            return [bobs, json.dumps(model.requests[-1]["messages"])]

        bobs, alices = asyncio.run(scenario())
    assert "1618" not in bobs
    assert "1618" in alices and "what was noted" not in alices


def test_host_json_serves_the_api_at_the_root() -> None:
    host_json = json.loads((RUNTIME / "host.json").read_text(encoding="utf-8"))
    assert host_json["version"] == "2.0"
    assert host_json["extensions"]["http"]["routePrefix"] == "", "/healthz, not /api/healthz"
    assert host_json["extensionBundle"]["version"] == "[4.*, 5.0.0)", "Flex needs bundle 4.x or later"


# -- the task queue's Service Bus trigger ------------------------------------------------------------


@pytest.fixture(scope="module")
def task_host(
    model_server: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModuleType, Settings, asyncio.AbstractEventLoop]]:
    """The host configured to consume a task queue, and the one event loop its invocations run on (the
    opened services are bound to it, as to the Functions worker's loop)."""
    loop = asyncio.new_event_loop()
    with imported_host("function_app.py", model_server, tmp_path_factory.mktemp("tasks")) as (
        module,
        settings,
    ):
        yield module, settings, loop
        loop.run_until_complete(module.api.state.lifecycle.close())
    loop.close()


def _deliver(
    task_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop],
    body: dict[str, Any] | bytes,
    *,
    message_id: str = "m-1",
    headers: dict[str, str] | None = None,
    delivery_count: int = 1,
) -> None:
    """Invoke the trigger the way the Functions host does, with one Service Bus message."""
    module, _, loop = task_host
    message = ServiceBusMessage(
        body=body if isinstance(body, bytes) else json.dumps(body).encode(),
        message_id=message_id,
        application_properties=headers or {},
        user_properties={},
        delivery_count=delivery_count,
        enqueued_time_utc=datetime.datetime.now(datetime.UTC),
    )
    loop.run_until_complete(module.task_trigger.build().get_user_function()(message))


def test_the_task_trigger_reads_the_task_queue_over_an_identity_connection(
    task_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop],
) -> None:
    module, _, _ = task_host
    assert [f.get_function_name() for f in module.app.get_functions()] == ["http_app_func", "run_task"]
    assert module.sweep_trigger is None, "an app that delegates to no other queue sweeps none"
    binding = module.task_trigger.build().get_trigger()
    assert binding.get_binding_name() == "serviceBusTrigger"
    assert binding.queue_name == "%AGENTSTAGE_TASK_QUEUE%", "resolved from the app setting"
    assert binding.connection == "ServiceBusConnection", "ServiceBusConnection__* app settings, no secret"


def test_a_task_message_runs_its_task_once(
    task_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop], model: ScriptedModelServer
) -> None:
    _, settings, _ = task_host
    record = submit(settings, "hello from the queue")
    message_id, body, headers = message_parts(record)
    _deliver(task_host, body, message_id=message_id, headers=headers)
    done = stored(settings, record.id)
    assert done.state is TaskState.SUCCEEDED and done.result is not None
    assert done.result["answer"] == "hello from the queue"
    calls = len(model.requests)
    _deliver(task_host, body, message_id=message_id, headers=headers, delivery_count=2)
    assert len(model.requests) == calls, "a redelivered message of a finished task runs nothing"


def test_a_failing_run_fails_the_task_and_completes_the_message(
    task_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop], model: ScriptedModelServer
) -> None:
    _, settings, _ = task_host
    record = submit(settings, "fail")
    _, body, _ = message_parts(record)
    _deliver(task_host, body)  # returns: the failure is the task's, not the delivery's
    failed = stored(settings, record.id)
    assert failed.state is TaskState.FAILED and failed.error is not None
    assert failed.error["code"] == "model_error"


def test_a_poison_message_fails_every_delivery(
    task_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop],
) -> None:
    with pytest.raises(PoisonMessage, match="not a task message"):
        _deliver(task_host, {"hello": "world"})
    with pytest.raises(PoisonMessage, match="unknown task id 'nope'"):
        _deliver(task_host, {"kind": TASK_MESSAGE_KIND, "task_id": "nope"})
    # JSON nested too deeply for the parser (RecursionError, not ValueError) is no task message either
    with pytest.raises(PoisonMessage, match="not a task message"):
        _deliver(task_host, b"[" * 100_000)


def test_a_task_running_elsewhere_is_delivered_again_later(
    task_host: tuple[ModuleType, Settings, asyncio.AbstractEventLoop], model: ScriptedModelServer
) -> None:
    _, settings, _ = task_host
    record = submit(settings, "hello")
    mark_running_elsewhere(settings, record.id)
    _, body, _ = message_parts(record)
    with pytest.raises(Redeliver):
        _deliver(task_host, body, delivery_count=2)
    assert model.requests == []


def test_host_json_lets_the_host_complete_and_renew_task_messages() -> None:
    service_bus = json.loads((RUNTIME / "host.json").read_text(encoding="utf-8"))["extensions"]["serviceBus"]
    assert service_bus["autoCompleteMessages"] is True, "returning completes; raising abandons"
    assert service_bus["maxConcurrentCalls"] >= 1
    assert service_bus["maxAutoLockRenewalDuration"] == "00:05:00"


# -- the task queue's sweep: a timer trigger ---------------------------------------------------------------


def test_the_orchestrators_app_sweeps_every_minute_without_catching_up(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    with imported_host("function_app.py", model, tmp_path, **DELEGATING) as (module, _):
        names = [f.get_function_name() for f in module.app.get_functions()]
        binding = module.sweep_trigger.build().get_trigger()
    assert names == ["http_app_func", "run_task", "sweep_tasks"]
    assert binding.get_binding_name() == "timerTrigger"
    assert binding.schedule == "0 * * * * *", "NCRONTAB with seconds: at second 0 of every minute"
    assert (binding.run_on_startup, binding.use_monitor) == (False, False)


def test_a_tick_of_the_timer_sends_an_orphaned_task_its_message_and_the_trigger_runs_it(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    """The API wrote the task and died before sending its message: no worker loop runs on Functions to
    sweep the queue, the timer does; the message it sends runs the task through the queue's trigger."""
    loop = asyncio.new_event_loop()
    with imported_host("function_app.py", model, tmp_path, **DELEGATING) as (module, settings):
        try:
            lost = orphan(settings, "hello from the sweep")
            delegated = orphan(settings, "for the research agent", DELEGATE, DELEGATE_QUEUE)
            fresh = submit(settings, "sent as usual")  # queued a moment ago, with its message
            waiting_messages(settings)  # the fresh task's message, taken off the queue

            tick = TimerRequest(past_due=False)
            loop.run_until_complete(module.sweep_trigger.build().get_user_function()(tick))

            [message] = waiting_messages(settings)
            assert message.body["task_id"] == lost.id, "only the orphans are sent again"
            [elsewhere] = waiting_messages(settings, DELEGATE_QUEUE)
            assert elsewhere.body["task_id"] == delegated.id, "the delegate's queue is swept too"
            host = (module, settings, loop)
            _deliver(host, dict(message.body), message_id=message.message_id, headers=dict(message.headers))
            done = stored(settings, lost.id)
            assert done.state is TaskState.SUCCEEDED and done.result is not None
            assert done.result["answer"] == "hello from the sweep"
            assert stored(settings, fresh.id).state is TaskState.QUEUED

            loop.run_until_complete(module.sweep_trigger.build().get_user_function()(tick))
            assert waiting_messages(settings) == [], "nothing left to sweep"
            assert waiting_messages(settings, DELEGATE_QUEUE) == []
        finally:
            loop.run_until_complete(module.api.state.lifecycle.close())
            loop.close()
