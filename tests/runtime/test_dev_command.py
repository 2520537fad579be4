"""``agentstage dev``: the stock openai client chats with the default agent, offline."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from agent_runtime.testing.serve import bind_socket
from agentstage.commands import dev
from agentstage.console import Console
from core.errors import AgentstageError


def free_port() -> int:
    with bind_socket("127.0.0.1", 0) as probe:
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_dev(workdir: Path, *argv: str) -> Iterator[tuple[int, str]]:
    """``agentstage dev`` in a subprocess, in ``workdir``, with no AGENTSTAGE_* or AWS_* variables set."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AGENTSTAGE_", "AWS_"))}
    code = "import sys; from agentstage.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "dev", "--port", str(port), *argv],
        cwd=workdir,
        env=env | {"PYTHONUNBUFFERED": "1"},
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
        yield port, "".join(banner)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    with running_dev(tmp_path_factory.mktemp("dev")) as running:
        yield running


def test_dev_prints_how_to_call_it(dev_server: tuple[int, str]) -> None:
    port, banner = dev_server
    assert (
        f"agentstage dev: runtime at http://127.0.0.1:{port} (scripted model server at http://127.0.0.1:"
        in banner
    )
    assert "API key: dev-key (set AGENTSTAGE_API_KEY to change it)" in banner
    assert "agents: assistant" in banner
    assert "task worker: queue 'agentstage-tasks' on the sqlite bus" in banner
    assert f"curl -s http://127.0.0.1:{port}/v1/agents/assistant/tasks" in banner


def test_the_openai_client_chats_with_the_dev_agent(dev_server: tuple[int, str]) -> None:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{dev_server[0]}/v1", api_key="dev-key", max_retries=0)
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
    with running_dev(tmp_path, "--model-server", server) as (port, banner):
        assert banner_line in banner
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="dev-key", max_retries=0)
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


def test_a_task_queued_on_the_dev_runtime_is_run_by_its_worker(dev_server: tuple[int, str]) -> None:
    headers = {"Authorization": "Bearer dev-key"}
    with httpx.Client(base_url=f"http://127.0.0.1:{dev_server[0]}", headers=headers, timeout=10) as http:
        queued = http.post("/v1/agents/assistant/tasks", json={"input": "what is 6*7?"})
        assert queued.status_code == 202, queued.text
        deadline = time.monotonic() + 20
        task = queued.json()
        while task["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
            task = http.get(queued.headers["location"]).json()
    assert task["state"] == "succeeded", task
    assert task["result"]["output"] == "The answer is 42."


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
    ],
)
def test_a_bad_agents_file_is_a_user_error(tmp_path: Path, content: str, message: str) -> None:
    agents = tmp_path / "agents.yaml"
    agents.write_text(content)
    with pytest.raises(AgentstageError, match=message):
        dev.run(
            parse("--port", str(free_port()), "--agents", str(agents)), Console(io.StringIO(), io.StringIO())
        )


def test_a_missing_agents_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(AgentstageError, match="cannot read"):
        dev.run(parse("--agents", str(tmp_path / "none.json")), Console(io.StringIO(), io.StringIO()))
