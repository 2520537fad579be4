"""``agentstage dev``: run the agent runtime locally, offline, with embedded defaults.

The runtime is served on ``--host``/``--port`` with SQLite state (``.agentstage/state.db``) and, unless a
real model is configured, the scripted model server started beside it on another loopback port (it
answers arithmetic questions through the calculator tool and echoes everything else). A task worker runs
in the same event loop on the embedded SQLite queue (``.agentstage/bus.db``), so the task endpoints
(``POST /v1/agents/{agent}/tasks``, ``GET /v1/tasks/{id}``) work out of the box; it starts once the API
has started and stops before the API shuts down.

- Real model: set ``AGENTSTAGE_LLM_ENDPOINT`` (and ``AGENTSTAGE_LLM_PROVIDER``, ``AGENTSTAGE_LLM_API_KEY``,
  ``AGENTSTAGE_DEFAULT_MODEL`` as needed), or ``AGENTSTAGE_LLM_PROVIDER=bedrock`` with AWS credentials,
  and the runtime talks to it instead.
- ``--model-server openai|anthropic|bedrock`` picks which provider's wire format the local scripted server
  speaks (the same script), so the runtime's Anthropic Messages and Bedrock Converse clients run offline too.
- API key: ``AGENTSTAGE_API_KEY``, default ``dev-key``.
- Agents: ``--agents FILE`` (a JSON or YAML list of definitions), else ``AGENTSTAGE_AGENTS``, else one
  ``assistant`` agent with the calculator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from agentstage.console import Console
from core.errors import AgentstageError

DEFAULT_API_KEY = "dev-key"
ENDPOINT_VARIABLE = "AGENTSTAGE_LLM_ENDPOINT"
PROVIDER_VARIABLE = "AGENTSTAGE_LLM_PROVIDER"
API_KEY_VARIABLE = "AGENTSTAGE_API_KEY"
MODEL_SERVERS = ("openai", "anthropic", "bedrock")
DEV_ANTHROPIC_KEY = "dev-anthropic-key"
"""The key the local Anthropic server expects and the runtime sends: a fixed dev value, never a real one."""
DEFAULT_AGENTS: list[dict[str, Any]] = [
    {
        "name": "assistant",
        "description": "A helpful assistant that does arithmetic with the calculator tool.",
        "instructions": "You are a helpful assistant. Use the calculator tool for any arithmetic.",
        "tools": ["calculator"],
    }
]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8000, help="port of the runtime (default: 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--agents", type=Path, metavar="FILE", help="JSON or YAML list of agent definitions")
    parser.add_argument(
        "--model-server",
        choices=MODEL_SERVERS,
        help="start the local scripted model server speaking this provider's API "
        "(default: openai, unless a real model is configured)",
    )


def run(args: argparse.Namespace, console: Console) -> int:
    # The runtime is imported here so that other verbs never pay for FastAPI and openai at startup.
    import uvicorn

    overrides = _overrides(args)
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(_listen(args.host, args.port))
        server = args.model_server or (None if _real_model_configured() else "openai")
        if server is None:
            model_note = f"model endpoint {os.environ.get(ENDPOINT_VARIABLE) or 'bedrock'}"
        else:
            model_settings, model_note = _start_model_server(server, stack)
            overrides |= model_settings
        settings, app = _runtime(overrides)
        # Show the audit and usage records (the runtime's own loggers); keep HTTP client chatter out.
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        _print_usage(console, args, settings, model_note)
        _run_worker_in_lifespan(app)
        uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="on")).run(sockets=[listener])
    return 0


def _real_model_configured() -> bool:
    return bool(os.environ.get(ENDPOINT_VARIABLE)) or os.environ.get(PROVIDER_VARIABLE) == "bedrock"


def _start_model_server(provider: str, stack: contextlib.ExitStack) -> tuple[dict[str, Any], str]:
    """Start the scripted model server speaking ``provider``'s API; returns the runtime settings that
    point at it and a line for the banner."""
    from agent_runtime.testing import (
        BedrockServer,
        ScriptedAnthropicServer,
        ScriptedModelServer,
        default_script,
    )

    if provider == "anthropic":
        anthropic = stack.enter_context(ScriptedAnthropicServer(default_script(), api_key=DEV_ANTHROPIC_KEY))
        settings = {"llm_endpoint": anthropic.url, "llm_auth": "api_key", "llm_api_key": DEV_ANTHROPIC_KEY}
        return {"llm_provider": "anthropic"} | settings, f"scripted Anthropic Messages API at {anthropic.url}"
    if provider == "bedrock":
        bedrock = stack.enter_context(BedrockServer(default_script()))
        # boto3 reads its endpoint and (fake, static) credentials from the environment: this process only.
        os.environ.update(bedrock.environment)
        settings = {"llm_provider": "bedrock", "llm_auth": "aws", "aws_region": bedrock.region}
        return settings, f"scripted Bedrock Runtime (Converse) at {bedrock.url}"
    model = stack.enter_context(ScriptedModelServer(default_script()))
    settings = {"llm_provider": "openai", "llm_endpoint": model.base_url, "llm_auth": "none"}
    return settings, f"scripted model server at {model.base_url}"


def _run_worker_in_lifespan(app: Any) -> None:
    """Wrap the app's lifespan so a task worker runs in its event loop: started after the app's own startup
    (sharing its services, task service included) and stopped before the app's shutdown closes them."""
    from agent_runtime.tasks.worker import Worker

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[None]:
        async with inner(served):
            services = await app.state.lifecycle.get()
            tasks = await services.tasks.get()
            worker = Worker(services.runner, services.catalog, tasks, services.settings)
            working = asyncio.create_task(worker.run())
            working.add_done_callback(_report_worker_failure)
            try:
                yield
            finally:
                worker.stop()
                await asyncio.wait([working])

    app.router.lifespan_context = lifespan


def _report_worker_failure(working: asyncio.Task[None]) -> None:
    if not working.cancelled() and working.exception() is not None:
        logging.getLogger("agentstage.worker").error("the task worker stopped: %s", working.exception())


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dev defaults for what the environment leaves unset: the API key and the agents."""
    overrides: dict[str, Any] = {}
    if not os.environ.get(API_KEY_VARIABLE):
        overrides["api_key"] = DEFAULT_API_KEY
    if args.agents is not None:
        overrides["agents"] = json.dumps(_read_agents(args.agents))
    elif os.environ.get("AGENTSTAGE_AGENTS", "").strip() in ("", "[]"):
        overrides["agents"] = json.dumps(DEFAULT_AGENTS)
    return overrides


def _runtime(overrides: dict[str, Any]) -> tuple[Any, Any]:
    """The settings (environment plus ``overrides``) and the app; configuration mistakes are user errors."""
    from pydantic import ValidationError

    from agent_runtime.api import create_app
    from agent_runtime.errors import ConfigurationError
    from agent_runtime.settings import Settings

    try:
        settings = Settings(**overrides)
        return settings, create_app(settings)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        prefix = f"{where}: " if where else ""
        raise AgentstageError(f"invalid runtime settings: {prefix}{first['msg']}") from None
    except ConfigurationError as error:
        raise AgentstageError(str(error)) from None


def _listen(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port is a clear user error instead of a server crash."""
    from agent_runtime.testing.serve import bind_socket

    if not 0 < port < 65536:
        raise AgentstageError(f"--port must be between 1 and 65535, got {port}")
    try:
        return bind_socket(host, port)
    except OSError as error:
        message = f"cannot listen on {host}:{port}: {error.strerror}; choose another --port"
        raise AgentstageError(message) from None


def _read_agents(path: Path) -> list[Any]:
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except OSError as error:
        raise AgentstageError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise AgentstageError(f"{path} is not valid JSON or YAML: {error}") from None
    if isinstance(data, dict) and "agents" in data:
        data = data["agents"]
    if not isinstance(data, list):
        raise AgentstageError(f"{path} must hold a list of agent definitions (or {{agents: [...]}})")
    return data


def _print_usage(console: Console, args: argparse.Namespace, settings: Any, model_note: str) -> None:
    from agent_runtime.tasks.service import worker_queue

    url = f"http://{args.host}:{args.port}"
    key = DEFAULT_API_KEY if not os.environ.get(API_KEY_VARIABLE) else f"${API_KEY_VARIABLE}"
    names = [agent["name"] for agent in json.loads(settings.agents)]
    agent = names[0] if names else "<agent>"
    console.info(f"agentstage dev: runtime at {url} ({model_note})")
    console.info(f"agents: {', '.join(names) or 'none configured'}")
    console.info(f"API key: {key} (set {API_KEY_VARIABLE} to change it)")
    console.info(f"task worker: queue '{worker_queue(settings)}' on the {settings.bus_backend} bus")
    console.info("try it:")
    console.info(
        f"  curl -s {url}/v1/agents/{agent}/invoke -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' -d '{\"input\": \"what is 6*7?\"}'"
    )
    console.info(
        f"  curl -s {url}/v1/agents/{agent}/tasks -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' -d '{\"input\": \"what is 6*7?\"}'   "
        "# 202 + Location: GET it for the result"
    )
    console.info(
        f"  python -c \"from openai import OpenAI; c = OpenAI(base_url='{url}/v1', api_key='{key}'); "
        f"print(c.chat.completions.create(model='{agent}', "
        "messages=[{'role': 'user', 'content': 'hello'}]).choices[0].message.content)\""
    )
