"""``agentstage dev``: run the agent runtime locally, offline, with embedded defaults.

The runtime is served on ``--host``/``--port`` with SQLite state (``.agentstage/state.db``) and, unless a
real model is configured, the scripted model server started beside it on another loopback port (it
answers arithmetic questions through the calculator tool, ``call <tool> {...}`` through that tool, and
echoes everything else). A task worker runs
in the same event loop on the embedded SQLite queue (``.agentstage/bus.db``), so the task endpoints
(``POST /v1/agents/{agent}/tasks``, ``GET /v1/tasks/{id}``) work out of the box; it starts once the API
has started and stops before the API shuts down.

- Real model: set ``AGENTSTAGE_LLM_ENDPOINT`` (and ``AGENTSTAGE_LLM_PROVIDER``, ``AGENTSTAGE_LLM_API_KEY``,
  ``AGENTSTAGE_DEFAULT_MODEL`` as needed), or ``AGENTSTAGE_LLM_PROVIDER=bedrock`` with AWS credentials,
  and the runtime talks to it instead.
- ``--model-server openai|anthropic|bedrock`` picks which provider's wire format the local scripted server
  speaks (the same script), so the runtime's Anthropic Messages and Bedrock Converse clients run offline too.
- API keys: ``AGENTSTAGE_API_KEY``, default ``dev-key`` (roles ``AGENTSTAGE_API_KEY_ROLES``, default
  ``user``); and, unless ``AGENTSTAGE_API_KEY`` or ``AGENTSTAGE_API_KEYS`` is set, ``dev-reviewer``, whose
  caller also has the reviewer role, to try the review workflow (``GET /v1/approvals``).
- Agents: ``--agents FILE`` (a JSON or YAML list of definitions, with the runtime's snake_case keys or a
  stack file's camelCase ones; see ``examples/agents.yaml``), or ``--stack STACK`` (that stack's agents,
  orchestrator, tools, budgets and model prices, all in this one runtime: no cloud endpoint, no queue per
  agent), else ``AGENTSTAGE_AGENTS``, else one ``assistant`` agent with the calculator.
- State: everything lives under ``.agentstage/`` in the working directory (``.agentstage/<stack>/`` with
  ``--stack``, since stacks embed with other dimensions); delete it to start afresh.
- Knowledge: agents with the ``knowledge_search`` tool search the local index in the same state file, which
  ``agentstage ingest PATH`` fills from a folder of documents (with ``--stack``, the stack's cloud index
  settings are replaced by that local one).
- Tool modules (``AGENTSTAGE_TOOL_MODULES``) are imported from the working directory too.
- SIGTERM stops it as Ctrl+C does (the worker and the API shut down cleanly), with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.alias_generators import to_camel, to_snake

from agentstage.commands import add_project_dir
from agentstage.console import Console
from core.errors import AgentstageError
from core.stacks import load_stack_config, project_dir

DEFAULT_API_KEY = "dev-key"
DEV_REVIEWER_KEY = "dev-reviewer"
"""A second dev key: its caller also has the reviewer role (approves or rejects tool calls parked for review)."""
API_KEYS_VARIABLE = "AGENTSTAGE_API_KEYS"
AGENTS_VARIABLE = "AGENTSTAGE_AGENTS"
STATE_DIR = Path(".agentstage")
"""Where dev keeps its SQLite state, under the working directory (``STATE_DIR / <stack>`` with --stack)."""
EXAMPLE_AGENTS = "examples/agents.yaml"
ENDPOINT_VARIABLE = "AGENTSTAGE_LLM_ENDPOINT"
PROVIDER_VARIABLE = "AGENTSTAGE_LLM_PROVIDER"
API_KEY_VARIABLE = "AGENTSTAGE_API_KEY"
MODEL_SERVERS = ("openai", "anthropic", "bedrock")
DEV_ANTHROPIC_KEY = "dev-anthropic-key"
"""The key the local Anthropic server expects and the runtime sends: a fixed dev value, never a real one."""
KNOWLEDGE_CLOUD_SETTINGS = (
    "knowledge_backend",
    "search_endpoint",
    "knowledge_manage_index",
    "knowledge_index",
)
"""A stack's knowledge index is its cloud's (AI Search); dev searches the local one `agentstage ingest` fills."""
DEFAULT_AGENTS: list[dict[str, Any]] = [
    {
        "name": "assistant",
        "description": "A helpful assistant that does arithmetic with the calculator tool.",
        "instructions": "You are a helpful assistant. Use the calculator tool for any arithmetic.",
        "tools": ["calculator"],
    }
]


EPILOG = f"""\
agents:
  --agents FILE takes a JSON or YAML list of agent definitions (or {{agents: [...]}}),
  with the runtime's keys (token_budget) or a stack file's (tokenBudget);
  {EXAMPLE_AGENTS} is one to start from. --stack runs a stack's agents,
  orchestrator, tools, budgets and model prices in this one runtime, against the
  scripted model; the stack's cloud endpoints and queues are not used.

API keys:
  {DEFAULT_API_KEY}       roles from AGENTSTAGE_API_KEY_ROLES (default: user; e.g. user,finance)
  {DEV_REVIEWER_KEY}  roles user, reviewer: GET /v1/approvals, POST /v1/tasks/ID/approval
  (unless AGENTSTAGE_API_KEY or AGENTSTAGE_API_KEYS is set)

scripted model:
  'what is 6*7?' goes to the calculator; 'call TOOL {{"arg": "value"}}' calls any
  tool with those arguments, custom ones too (AGENTSTAGE_TOOL_MODULES, importable
  from this directory); anything else is echoed.

knowledge:
  agents with the knowledge_search tool search the documents that
  `agentstage ingest PATH` put into {STATE_DIR}/state.db (--stack: {STATE_DIR}/STACK/).

state:
  {STATE_DIR}/state.db (conversations, memory, budgets, tasks) and {STATE_DIR}/bus.db
  (the task queue), under this directory; {STATE_DIR}/STACK/ with --stack. Delete
  {STATE_DIR}/ to start afresh; AGENTSTAGE_SQLITE_PATH and AGENTSTAGE_BUS_SQLITE_PATH
  move them.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--port", type=int, default=8000, help="port of the runtime (default: 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    agents = parser.add_mutually_exclusive_group()
    agents.add_argument(
        "--agents",
        type=Path,
        metavar="FILE",
        help=f"JSON or YAML list of agent definitions (e.g. {EXAMPLE_AGENTS})",
    )
    agents.add_argument(
        "--stack",
        help="run this stack's agents, tools, budgets and routing locally (stacks/Pulumi.<stack>.yaml)",
    )
    add_project_dir(parser)
    parser.add_argument(
        "--model-server",
        choices=MODEL_SERVERS,
        help="start the local scripted model server speaking this provider's API "
        "(default: openai, unless a real model is configured)",
    )


def run(args: argparse.Namespace, console: Console) -> int:
    # The runtime is imported here so that other verbs never pay for FastAPI and openai at startup.
    import uvicorn

    from agent_runtime.server_protocol import SERVER_PROTOCOL

    if args.project_dir is not None and args.stack is None:
        raise AgentstageError("--project-dir names where --stack is read from: give --stack STACK too")
    overrides, source = runtime_overrides(args.stack, args.project_dir, args.agents)
    import_tools_from_here()
    try:
        with contextlib.ExitStack() as stack:
            _stop_cleanly_on_sigterm(stack)
            listener = stack.enter_context(_listen(args.host, args.port))
            server = args.model_server or (None if real_model_configured() else "openai")
            if server is None:
                model_note = f"model endpoint {os.environ.get(ENDPOINT_VARIABLE) or 'bedrock'}"
            else:
                model_settings, model_note = start_model_server(server, stack)
                overrides |= model_settings
            settings, app = build_runtime(overrides)
            # Show the audit and usage records (the runtime's own loggers); keep HTTP client chatter out.
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
            logging.getLogger("httpx").setLevel(logging.WARNING)
            _print_usage(console, args, settings, model_note, source)
            _run_worker_in_lifespan(app)
            # The container's HTTP protocol: a request head bounded in size and time, as deployed.
            config = uvicorn.Config(app, log_level="info", lifespan="on", http=SERVER_PROTOCOL)
            uvicorn_server = uvicorn.Server(config)
            uvicorn_server.run(sockets=[listener])
            if not uvicorn_server.started:
                raise AgentstageError("the runtime did not start: see the log above")
    except _Terminated:
        console.info("agentstage dev: stopped (SIGTERM)")
    return 0


class _Terminated(Exception):
    """SIGTERM arrived: leave as Ctrl+C does, everything shut down, but with exit status 0."""


def _stop_cleanly_on_sigterm(stack: contextlib.ExitStack) -> None:
    """Make SIGTERM a clean stop with exit status 0 (a supervisor's or ``docker stop``'s normal request).

    uvicorn handles SIGTERM itself while it serves: it shuts the app down, restores the handler it found,
    then raises the signal again so that the process ends "as the signal intended". With Python's default
    handler that is death by SIGTERM, exit status 143, after a clean shutdown. This handler turns the
    re-raised signal (or one arriving before uvicorn serves) into :class:`_Terminated` instead.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    stack.callback(signal.signal, signal.SIGTERM, previous)


def import_tools_from_here() -> None:
    """Let AGENTSTAGE_TOOL_MODULES name modules in the working directory, as ``python -m`` would."""
    here = str(Path.cwd())
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def real_model_configured() -> bool:
    return bool(os.environ.get(ENDPOINT_VARIABLE)) or os.environ.get(PROVIDER_VARIABLE) == "bedrock"


def start_model_server(provider: str, stack: contextlib.ExitStack) -> tuple[dict[str, Any], str]:
    """Start the scripted model server speaking ``provider``'s API; returns the runtime settings that
    point at it and a line for the banner. It keeps no record of the requests: a dev server runs for hours
    (12,000 recorded requests held 110 MB)."""
    from agent_runtime.testing import (
        BedrockServer,
        ScriptedAnthropicServer,
        ScriptedModelServer,
        default_script,
    )

    if provider == "anthropic":
        anthropic = stack.enter_context(
            ScriptedAnthropicServer(default_script(), api_key=DEV_ANTHROPIC_KEY, record=False)
        )
        settings = {"llm_endpoint": anthropic.url, "llm_auth": "api_key", "llm_api_key": DEV_ANTHROPIC_KEY}
        return {"llm_provider": "anthropic"} | settings, f"scripted Anthropic Messages API at {anthropic.url}"
    if provider == "bedrock":
        bedrock = stack.enter_context(BedrockServer(default_script(), record=False))
        # boto3 reads its endpoint and (fake, static) credentials from the environment: this process only.
        os.environ.update(bedrock.environment)
        settings = {"llm_provider": "bedrock", "llm_auth": "aws", "aws_region": bedrock.region}
        return settings, f"scripted Bedrock Runtime (Converse) at {bedrock.url}"
    model = stack.enter_context(ScriptedModelServer(default_script(), record=False))
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


def runtime_overrides(
    stack: str | None, project: Path | None, agents: Path | None
) -> tuple[dict[str, Any], str]:
    """Dev defaults for what the environment leaves unset (the API key, the agents) and what ``--agents``
    or ``--stack`` sets; with where the agents come from, for the banner."""
    overrides: dict[str, Any] = {}
    if not os.environ.get(API_KEY_VARIABLE):
        overrides["api_key"] = DEFAULT_API_KEY
    if stack is not None:
        stack_settings, source = _stack_settings(stack, project)
        return overrides | stack_settings, source
    if agents is not None:
        overrides["agents"] = json.dumps(_read_agents(agents))
        return overrides, str(agents)
    if os.environ.get(AGENTS_VARIABLE, "").strip() in ("", "[]"):
        overrides["agents"] = json.dumps(DEFAULT_AGENTS)
        return overrides, "the default; --agents FILE or --stack STACK for others"
    return overrides, AGENTS_VARIABLE


def _stack_settings(stack: str, given_project: Path | None) -> tuple[dict[str, Any], str]:
    """The runtime settings of ``stack`` as one local runtime runs them all: every agent (the orchestrator
    first, delegating on this runtime's own queue), the budgets, model prices and embedding settings the
    blueprints deploy; no cloud endpoint and no queue per agent. State goes to its own directory: the
    stack's embedding dimensions differ from the default's."""
    from blueprints.topology import Topology

    config, path = load_stack_config(stack, project_dir(given_project))
    topology = Topology(config)
    agents: dict[str, Any] = {}
    for name in topology.definitions:
        for agent in json.loads(topology.agents_json(name)):
            agents.setdefault(agent["name"], agent)
    settings: dict[str, Any] = dict(topology.agent_settings(next(iter(topology.definitions))))
    # One runtime here, and its worker runs every agent: no queue per agent, and tasks work on any stage.
    for cloud_only in ("task_queue", "agent_queues", "tasks_enabled", *KNOWLEDGE_CLOUD_SETTINGS):
        settings.pop(cloud_only, None)
    settings["agents"] = json.dumps(list(agents.values()))
    state = STATE_DIR / stack
    if not os.environ.get("AGENTSTAGE_SQLITE_PATH"):
        settings["sqlite_path"] = str(state / "state.db")
    if not os.environ.get("AGENTSTAGE_BUS_SQLITE_PATH"):
        settings["bus_sqlite_path"] = str(state / "bus.db")
    return settings, f"stack {stack} ({path})"


def build_runtime(overrides: dict[str, Any]) -> tuple[Any, Any]:
    """The settings (environment plus ``overrides``, plus the dev reviewer key unless keys are configured)
    and the app; configuration mistakes are user errors naming the variable."""
    from pydantic import SecretStr

    from agent_runtime.api import create_app
    from agent_runtime.settings import Settings, check_json_settings
    from agent_runtime.startup import StartupError, configured

    def build() -> tuple[Any, Any]:
        settings = Settings(**overrides)
        if _dev_keys(settings):
            reviewer = {"caller": DEV_REVIEWER_KEY, "roles": ["user", settings.reviewer_role]}
            keys = SecretStr(json.dumps({DEV_REVIEWER_KEY: reviewer}))
            settings = settings.model_copy(update={"api_keys": keys})
        check_json_settings(settings)
        return settings, create_app(settings)

    try:
        return configured(build)
    except StartupError as error:
        raise AgentstageError(str(error)) from None


def _dev_keys(settings: Any) -> bool:
    """Whether dev's own keys are in use: API key auth, and neither key variable set."""
    configured = os.environ.get(API_KEY_VARIABLE) or os.environ.get(API_KEYS_VARIABLE)
    return settings.auth_mode == "api_key" and not configured


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
    from agent_runtime.agents import Agent

    return [_runtime_keys(entry, Agent, path, _agent_label(index, entry)) for index, entry in enumerate(data)]


def _agent_label(index: int, entry: Any) -> str:
    named = isinstance(entry, dict) and isinstance(entry.get("name"), str)
    return f"agent '{entry['name']}'" if named else f"agent #{index}"


def _runtime_keys(data: Any, model: type[BaseModel], path: Path, where: str) -> Any:
    """``data`` with a stack file's camelCase keys renamed to the runtime's snake_case ones (``tokenBudget``
    -> ``token_budget``), in nested sections too; a key that is neither names the allowed ones."""
    if not isinstance(data, dict):
        return data  # the runtime says what it must be
    renamed: dict[str, Any] = {}
    for key, value in data.items():
        name = to_snake(key) if isinstance(key, str) else key
        field = model.model_fields.get(name)
        if field is None:
            allowed = ", ".join(
                f"{known} ({to_camel(known)})" if "_" in known else known for known in model.model_fields
            )
            raise AgentstageError(f"{path}: {where}: unknown key '{key}'; allowed keys: {allowed}")
        if name in renamed:
            raise AgentstageError(f"{path}: {where}: '{key}' is given twice (as {name} and {to_camel(name)})")
        renamed[name] = _nested_keys(value, field.annotation, path, f"{where}: {name}")
    return renamed


def _nested_keys(value: Any, annotation: Any, path: Path, where: str) -> Any:
    """``value`` renamed as :func:`_runtime_keys` does, when ``annotation`` is (a sequence of) a model."""
    models = [a for a in _flatten(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if not models:
        return value
    if isinstance(value, list):
        return [_runtime_keys(item, models[0], path, f"{where}[{index}]") for index, item in enumerate(value)]
    return _runtime_keys(value, models[0], path, where)


def _flatten(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    return [annotation] if not args else [inner for arg in args for inner in _flatten(arg)]


def _print_usage(
    console: Console, args: argparse.Namespace, settings: Any, model_note: str, source: str
) -> None:
    from agent_runtime.tasks.service import worker_queue

    url = f"http://{args.host}:{args.port}"
    key = DEFAULT_API_KEY if not os.environ.get(API_KEY_VARIABLE) else f"${API_KEY_VARIABLE}"
    names = [agent["name"] for agent in json.loads(settings.agents)]
    agent = names[0] if names else "<agent>"
    console.info(f"agentstage dev: runtime at {url} ({model_note})")
    console.info(f"agents: {', '.join(names) or 'none configured'} (from {source})")
    budgets = [b.get("name", "?") for b in json.loads(settings.budgets) if isinstance(b, dict)]
    if budgets:
        console.info(f"budgets: {', '.join(budgets)}")
    if settings.auth_mode == "api_key":
        roles = ", ".join(settings.api_key_roles) or "none"
        console.info(f"API key: {key} (roles: {roles}; set {API_KEY_VARIABLE} to change it)")
        if _dev_keys(settings):
            console.info(
                f"reviewer key: {DEV_REVIEWER_KEY} (roles: user, {settings.reviewer_role}): "
                "GET /v1/approvals, POST /v1/tasks/{id}/approval"
            )
    else:
        console.info(f"callers: auth_mode {settings.auth_mode} (AGENTSTAGE_AUTH_MODE)")
    console.info(_state_line(settings))
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
    console.info('  # any tool, custom ones too: -d \'{"input": "call <tool> {\\"arg\\": \\"value\\"}"}\'')
    console.info(
        f"  python -c \"from openai import OpenAI; c = OpenAI(base_url='{url}/v1', api_key='{key}'); "
        f"print(c.chat.completions.create(model='{agent}', "
        "messages=[{'role': 'user', 'content': 'hello'}]).choices[0].message.content)\""
    )
    if settings.auth_mode == "api_key" and _dev_keys(settings):
        console.info(f"  curl -s {url}/v1/approvals -H 'Authorization: Bearer {DEV_REVIEWER_KEY}'")


def _state_line(settings: Any) -> str:
    """Where this run keeps its state, and how to start afresh."""
    if settings.state_backend == "sqlite" and settings.bus_backend == "sqlite":
        folder = Path(settings.sqlite_path).parent
        return (
            f"state: {settings.sqlite_path} (conversations, memory, budgets, tasks) and "
            f"{settings.bus_sqlite_path} (task queue); delete {folder}/ to start afresh"
        )
    return f"state: {settings.state_backend} store, {settings.bus_backend} bus (from the environment)"
