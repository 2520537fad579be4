"""The Azure Functions host: one anonymous ASGI function serving the runtime's API, called the way the worker does."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import azure.functions as func
import pytest

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
    assert [f.get_function_name() for f in functions] == ["http_app_func"]
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


def test_host_json_serves_the_api_at_the_root() -> None:
    host_json = json.loads((RUNTIME / "host.json").read_text(encoding="utf-8"))
    assert host_json["version"] == "2.0"
    assert host_json["extensions"]["http"]["routePrefix"] == "", "/healthz, not /api/healthz"
    assert host_json["extensionBundle"]["version"] == "[4.*, 5.0.0)", "Flex needs bundle 4.x or later"
