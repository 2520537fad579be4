"""``agentstage dev``: the stock openai client chats with the default agent, offline."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from agent_runtime.agents import parse_agents
from agent_runtime.settings import Settings
from agent_runtime.testing.serve import bind_socket
from agent_runtime.tools import default_registry
from agentstage.cli import build_parser, main
from agentstage.commands import dev
from agentstage.console import Console
from core.errors import AgentstageError
from tests.runtime.runtime_helpers import answer_to_an_oversized_head


def free_port() -> int:
    with bind_socket("127.0.0.1", 0) as probe:
        return probe.getsockname()[1]


@dataclasses.dataclass
class Dev:
    """A running ``agentstage dev``: its port, what it printed up to startup, and its process."""

    port: int
    banner: str
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def running_dev(workdir: Path, *argv: str, env: dict[str, str] | None = None) -> Iterator[Dev]:
    """``agentstage dev`` in a subprocess, in ``workdir``, with no AGENTSTAGE_* or AWS_* variables set but
    ``env``; stopped with SIGTERM on exit."""
    port = free_port()
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(("AGENTSTAGE_", "AWS_"))
    }
    code = "import sys; from agentstage.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "dev", "--port", str(port), *argv],
        cwd=workdir,
        env=inherited | {"PYTHONUNBUFFERED": "1"} | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        banner.append(line)
        if "Uvicorn running" in line or "Application startup complete" in line:
            break
    try:
        assert process.poll() is None, "".join(banner)
        yield Dev(port, "".join(banner), process)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    with running_dev(tmp_path_factory.mktemp("dev")) as running:
        yield running


def test_dev_prints_how_to_call_it(dev_server: Dev) -> None:
    port, banner = dev_server.port, dev_server.banner
    assert (
        f"agentstage dev: runtime at http://127.0.0.1:{port} (scripted model server at http://127.0.0.1:"
        in banner
    )
    assert "API key: dev-key (roles: user; set AGENTSTAGE_API_KEY to change it)" in banner
    assert "reviewer key: dev-reviewer (roles: user, reviewer): GET /v1/approvals" in banner
    assert "agents: assistant (from the default; --agents FILE or --stack STACK for others)" in banner
    assert (
        "state: .agentstage/state.db (conversations, memory, budgets, tasks) and .agentstage/bus.db "
        "(task queue); delete .agentstage/ to start afresh"
    ) in banner
    assert "task worker: queue 'agentstage-tasks' on the sqlite bus" in banner
    assert f"curl -s http://127.0.0.1:{port}/v1/agents/assistant/tasks" in banner
    assert f"curl -s http://127.0.0.1:{port}/v1/approvals -H 'Authorization: Bearer dev-reviewer'" in banner


def test_dev_serves_with_the_containers_bounded_request_head(dev_server: Dev) -> None:
    status, body = answer_to_an_oversized_head(dev_server.port)
    assert status.startswith(b"HTTP/1.1 431 ") and body["error"]["code"] == "headers_too_large"


def test_the_openai_client_chats_with_the_dev_agent(dev_server: Dev) -> None:
    client = openai.OpenAI(base_url=f"{dev_server.url}/v1", api_key="dev-key", max_retries=0)
    assert [model.id for model in client.models.list()] == ["assistant"]
    reply = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "what is 6*7?"}]
    )
    assert reply.choices[0].message.content == "The answer is 42."
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "hello agent"}], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "hello agent"


@pytest.mark.parametrize(
    ("server", "banner_line"),
    [
        ("anthropic", "scripted Anthropic Messages API at"),
        ("bedrock", "scripted Bedrock Runtime (Converse) at"),
    ],
)
def test_the_openai_client_chats_through_the_anthropic_and_bedrock_clients(
    tmp_path: Path, server: str, banner_line: str
) -> None:
    """The runtime's own Anthropic Messages and Bedrock Converse clients, against the local servers that
    speak those wire formats: a plain answer, a tool call (the calculator) and a stream."""
    with running_dev(tmp_path, "--model-server", server) as running:
        assert banner_line in running.banner
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="dev-key", max_retries=0)
        reply = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "what is 6*7?"}]
        )
        assert reply.choices[0].message.content == "The answer is 42."
        assert reply.usage is not None and reply.usage.total_tokens > 0
        stream = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hello agent"}], stream=True
        )
        streamed = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
        assert "".join(streamed) == "hello agent"


def run_task(dev: Dev, text: str) -> dict[str, Any]:
    """Queue a task for the assistant on a running dev and poll it until it ends (or 20 s pass)."""
    headers = {"Authorization": "Bearer dev-key"}
    with httpx.Client(base_url=dev.url, headers=headers, timeout=10) as http:
        queued = http.post("/v1/agents/assistant/tasks", json={"input": text})
        assert queued.status_code == 202, queued.text
        deadline = time.monotonic() + 20
        task = queued.json()
        while task["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
            task = http.get(queued.headers["location"]).json()
    return task


def test_a_task_queued_on_the_dev_runtime_is_run_by_its_worker(dev_server: Dev) -> None:
    task = run_task(dev_server, "what is 6*7?")
    assert task["state"] == "succeeded", task
    assert task["result"]["answer"] == "The answer is 42."


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    dev.configure(parser)
    return parser.parse_args(argv)


def test_a_busy_port_is_a_user_error() -> None:
    with bind_socket("127.0.0.1", 0) as busy:
        port = busy.getsockname()[1]
        busy.listen()
        with pytest.raises(
            AgentstageError, match=f"cannot listen on 127.0.0.1:{port}: .*choose another --port"
        ):
            dev.run(parse("--port", str(port)), Console(io.StringIO(), io.StringIO()))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{name: a, tools: [shell]}]", "agent 'a': unknown tool 'shell'"),
        ("{agents: {name: a}}", "must hold a list of agent definitions"),
        ("[{", "is not valid JSON or YAML"),
        (
            "[{name: a, tokenBudgett: 5}]",
            (
                "agent 'a': unknown key 'tokenBudgett'; allowed keys: name, instructions, description, model, "
                "tools, token_budget (tokenBudget), max_steps (maxSteps), max_output_tokens (maxOutputTokens), "
            ),
        ),
        (
            "[{name: a, memory: {historyWindoww: 2}}]",
            (
                "agent 'a': memory: unknown key 'historyWindoww'; allowed keys: history_window (historyWindow), "
                "persist, recall_top_k (recallTopK)"
            ),
        ),
        ("[{name: a, tokenBudget: 5, token_budget: 6}]", "'token_budget' is given twice"),
    ],
)
def test_a_bad_agents_file_is_a_user_error(tmp_path: Path, content: str, message: str) -> None:
    agents = tmp_path / "agents.yaml"
    agents.write_text(content)
    with pytest.raises(AgentstageError, match=re.escape(message)):
        dev.run(
            parse("--port", str(free_port()), "--agents", str(agents)), Console(io.StringIO(), io.StringIO())
        )


def test_a_missing_agents_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(AgentstageError, match="cannot read"):
        dev.run(parse("--agents", str(tmp_path / "none.json")), Console(io.StringIO(), io.StringIO()))


EXAMPLE_AGENTS = Path(__file__).resolve().parents[2] / "examples" / "agents.yaml"


def test_the_example_agents_file_runs_with_the_stack_files_camel_case_keys() -> None:
    definitions = dev._read_agents(EXAMPLE_AGENTS)
    agents = parse_agents(json.dumps(definitions), Settings(agents="[]"), default_registry)
    assert [agent.name for agent in agents] == ["assistant", "researcher", "lead"]
    assert (agents[0].token_budget, agents[0].max_output_tokens) == (20000, 1024)
    assert (agents[1].max_steps, agents[1].memory.history_window, agents[1].memory.recall_top_k) == (6, 10, 3)
    assert agents[2].orchestration is not None and agents[2].orchestration.default_agents == ("researcher",)


def test_help_names_the_example_agents_the_state_directory_and_the_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser("dev").parse_args(["dev", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--agents FILE JSON or YAML list of agent definitions (e.g. examples/agents.yaml)" in text
    assert "--stack STACK run this stack's agents, tools, budgets and routing locally" in text
    assert "Delete .agentstage/ to start afresh" in text
    assert "dev-reviewer roles user, reviewer: GET /v1/approvals" in text
    assert '\'call TOOL {"arg": "value"}\' calls any tool' in text


def run_dev_in_process(monkeypatch: pytest.MonkeyPatch, *argv: str, **env: str) -> tuple[int, str]:
    """``agentstage dev`` through the command line's own error handling: (exit status, stderr)."""
    for name in [name for name in os.environ if name.startswith("AGENTSTAGE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    err = io.StringIO()
    status = main(["dev", "--port", str(free_port()), *argv], Console(io.StringIO(), err))
    return status, err.getvalue()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "AGENTSTAGE_TOOL_MODULES",
            "[mytools",
            (
                "AGENTSTAGE_TOOL_MODULES: starts with '[' but is not a JSON list (Expecting value at position 1); "
                'write a comma-separated list such as a,b or a JSON list such as ["a", "b"]'
            ),
        ),
        ("AGENTSTAGE_TOOL_MODULES", "nosuchmodule", "AGENTSTAGE_TOOL_MODULES: cannot import 'nosuchmodule'"),
        (
            "AGENTSTAGE_SENSITIVE_PATTERNS",
            r"ACME-\d{1,8}",
            (
                "AGENTSTAGE_SENSITIVE_PATTERNS: must be a JSON list of regular expressions, e.g. "
                '["ACME-[0-9]{6}", "(?i)project x"]; not comma-separated, because a pattern may itself contain '
                "commas"
            ),
        ),
        (
            "AGENTSTAGE_INJECTION_SCREENING",
            "strict",
            "AGENTSTAGE_INJECTION_SCREENING: Input should be 'enforce', 'report' or 'off' (got 'strict')",
        ),
        ("AGENTSTAGE_MAX_STEPS", "0", "AGENTSTAGE_MAX_STEPS: Input should be greater than 0 (got '0')"),
        (
            "AGENTSTAGE_MODEL_PRICES",
            "gpt-4o-mini=0.15",
            (
                "AGENTSTAGE_MODEL_PRICES is not valid JSON (Expecting value at position 0): it must be a JSON "
                'object, e.g. {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}'
            ),
        ),
        (
            "AGENTSTAGE_BUDGETS",
            '{"name": "daily"}',
            "AGENTSTAGE_BUDGETS must be a JSON list, not an object: e.g. [{",
        ),
        ("AGENTSTAGE_API_KEYS", "secret-key-1", "AGENTSTAGE_API_KEYS is not valid JSON"),
    ],
)
def test_a_settings_mistake_exits_2_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    status, err = run_dev_in_process(monkeypatch, **{variable: value})
    assert status == 2, err
    assert re.match(rf"error: invalid (settings|configuration): {re.escape(message)}", err), err
    assert err.count("\n") == 1 and "internal error" not in err, err
    if variable == "AGENTSTAGE_API_KEYS":
        assert value not in err  # a secret's value is never shown


def test_an_unknown_stack_exits_2_listing_the_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    status, err = run_dev_in_process(monkeypatch, "--stack", "nope")
    assert status == 2, err
    assert "unknown stack 'nope'" in err and "foundation-staging" in err, err


CUSTOM_TOOLS = """
from pydantic import BaseModel

from agent_runtime.tools import ToolContext, tool


class ShoutArgs(BaseModel):
    text: str


@tool(roles={"reviewer"})
async def shout(args: ShoutArgs, ctx: ToolContext) -> str:
    \"\"\"Say it louder (reviewers only).\"\"\"
    return args.text.upper()
"""


def test_a_custom_tool_from_comma_separated_settings_is_tried_with_the_reviewer_key(tmp_path: Path) -> None:
    """Plain comma-separated list settings, a tool module in the working directory, an agents file with a
    stack file's camelCase keys, and the dev reviewer key for a tool only reviewers may call."""
    (tmp_path / "mytools.py").write_text(CUSTOM_TOOLS)
    (tmp_path / "agents.yaml").write_text(
        "- {name: herald, tools: [shout], tokenBudget: 5000, maxOutputTokens: 256}\n"
    )
    env = {"AGENTSTAGE_TOOL_MODULES": "mytools", "AGENTSTAGE_API_KEY_ROLES": "user, finance"}
    body = {"input": 'call shout {"text": "hello"}'}
    with running_dev(tmp_path, "--agents", "agents.yaml", env=env) as running:
        assert "agents: herald (from agents.yaml)" in running.banner
        assert "API key: dev-key (roles: user, finance;" in running.banner
        with httpx.Client(base_url=running.url, timeout=10) as http:
            as_user = http.post(
                "/v1/agents/herald/invoke", json=body, headers={"Authorization": "Bearer dev-key"}
            )
            as_reviewer = http.post(
                "/v1/agents/herald/invoke", json=body, headers={"Authorization": "Bearer dev-reviewer"}
            )
            approvals = http.get("/v1/approvals", headers={"Authorization": "Bearer dev-reviewer"})
    assert as_user.status_code == 200, as_user.text
    assert [step.get("outcome") for step in as_user.json()["steps"]] == [None, "denied", None]
    assert as_reviewer.json()["answer"] == "HELLO", as_reviewer.text
    assert approvals.status_code == 200 and approvals.json() == {"tasks": []}


def test_a_stack_runs_locally_and_sigterm_stops_dev_with_status_0(tmp_path: Path) -> None:
    """--stack: the stack's agents (orchestrator first), budgets and model deployments in one local runtime,
    against the scripted model, with state of its own; SIGTERM then shuts it down cleanly, exit status 0."""
    with running_dev(tmp_path, "--stack", "foundation-staging") as running:
        banner = running.banner
        headers = {"Authorization": "Bearer dev-key"}
        with httpx.Client(base_url=running.url, headers=headers, timeout=20) as http:
            agents = http.get("/v1/agents").json()["agents"]
            analyst = http.post("/v1/agents/analyst/invoke", json={"input": "what is 6*7?"}).json()
            orchestrated = http.post("/v1/agents/orchestrator/invoke", json={"input": "what is 6*7?"})
        running.process.send_signal(signal.SIGTERM)
        rest, _ = running.process.communicate(timeout=30)
    assert (
        "agents: orchestrator, research, analyst (from stack foundation-staging "
        "(stacks/Pulumi.foundation-staging.yaml))"
    ) in banner
    assert "budgets: tenant-daily, research-hourly, caller-minute" in banner
    assert "state: .agentstage/foundation-staging/state.db" in banner
    assert (tmp_path / ".agentstage" / "foundation-staging" / "state.db").is_file()
    assert [(agent["name"], agent["model"]) for agent in agents] == [
        ("orchestrator", "chat"),
        ("research", "chat"),
        ("analyst", "chat-mini"),
    ]
    assert analyst["answer"] == "The answer is 42." and analyst["steps"][0]["model"] == "chat-mini"
    assert orchestrated.status_code == 200, orchestrated.text
    assert running.process.returncode == 0, rest
    assert "agentstage dev: stopped (SIGTERM)" in rest


def test_project_dir_without_a_stack_is_a_user_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    status, err = run_dev_in_process(monkeypatch, "--project-dir", str(tmp_path))
    assert (status, err) == (
        2,
        "error: --project-dir names where --stack is read from: give --stack STACK too\n",
    )


def test_a_pilot_stack_takes_tasks_under_dev_whose_worker_runs_them(tmp_path: Path) -> None:
    """The deployed pilot runs no task worker (its task endpoints answer 501); dev runs one beside the API."""
    with running_dev(tmp_path, "--stack", "pilot-dev") as dev:
        task = run_task(dev, "what is 6*7?")
    assert task["state"] == "succeeded", task


class _Entered(contextlib.ExitStack):
    """An exit stack that remembers what entered it: the model server ``start_model_server`` started."""

    def __init__(self) -> None:
        super().__init__()
        self.entered: list[Any] = []

    def enter_context(self, cm: Any) -> Any:  # type: ignore[override]
        self.entered.append(super().enter_context(cm))
        return self.entered[-1]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "bedrock"])
def test_the_dev_model_server_keeps_no_record_of_the_requests(provider: str) -> None:
    """A dev server runs for hours: the scripted model must not hold every request it was sent."""
    with _Entered() as stack:
        settings, _ = dev.start_model_server(provider, stack)
        [server] = stack.entered
        for _ in range(3):
            if provider == "openai":
                body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
                assert (
                    httpx.post(f"{settings['llm_endpoint']}/chat/completions", json=body).status_code == 200
                )
            elif provider == "anthropic":
                body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}
                headers = {"x-api-key": settings["llm_api_key"], "anthropic-version": "2023-06-01"}
                answer = httpx.post(f"{settings['llm_endpoint']}/v1/messages", json=body, headers=headers)
                assert answer.status_code == 200, answer.text
            else:
                assert httpx.post(f"{server.url}/model/m/converse", json={}).status_code in (400, 403)
    recordings = [getattr(server, name, []) for name in ("requests", "headers", "calls", "abandoned")]
    assert recordings == [[], [], [], []]
