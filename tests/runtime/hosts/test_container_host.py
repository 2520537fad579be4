"""The container host: what the Dockerfile promises, and its CMD and HEALTHCHECK run against the real app.

No Docker engine here, so the image is not built; instead the exact server command of the image and its
healthcheck command are run on loopback from the same files the image copies.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_runtime.server_protocol import SERVER_PROTOCOL
from tests.runtime.runtime_helpers import answer_to_an_oversized_head

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"
DOCKERFILE = (RUNTIME / "Dockerfile").read_text(encoding="utf-8")
INSTRUCTIONS = re.findall(r"^([A-Z]+)\s+((?:.*\\\n)*.*)$", DOCKERFILE, flags=re.MULTILINE)


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, argument in INSTRUCTIONS:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, argument))
    return stages


def _final(keyword: str) -> str:
    values = [argument for key, argument in _stages()[-1] if key == keyword]
    assert values, f"the final stage has no {keyword}"
    return values[-1]


def _exec_form(keyword: str) -> list[str]:
    argument = _final(keyword).replace("\\\n", " ")
    return json.loads(argument[argument.index("[") :])


def _server_command() -> list[str]:
    """The image's CMD, its program taken from this interpreter's environment."""
    command = _exec_form("CMD")
    return [str(Path(sys.executable).with_name(command[0])), *command[1:]]


def test_base_image_is_pinned_to_a_patch_version_and_digest_pinning_is_documented() -> None:
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert default and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", default.group(1)), default
    assert all(argument.startswith("${PYTHON_IMAGE}") for key, argument in INSTRUCTIONS if key == "FROM")
    assert "@sha256:<digest>" in DOCKERFILE and "imagetools inspect" in DOCKERFILE


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    user = _final("USER").split(":")[0]
    assert user.isdigit() and int(user) != 0


def test_final_stage_installs_no_build_tools() -> None:
    runs = " ".join(argument for key, argument in _stages()[-1] if key == "RUN")
    assert not re.search(r"apt-get|apk|gcc|build-essential|pip install", runs), runs
    assert "--only-binary=:all:" in DOCKERFILE, "no stage compiles anything"


def test_image_installs_the_container_requirements_only() -> None:
    assert (
        "COPY requirements-core.txt requirements-azure.txt requirements-aws.txt requirements-container.txt ./"
        in DOCKERFILE
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The image's CMD, bound to loopback on a free port, from the runtime folder the image copies."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = _server_command()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = {**os.environ, "AGENTSTAGE_SQLITE_PATH": str(tmp_path_factory.mktemp("state") / "state.db")}
    process = subprocess.Popen(command, cwd=RUNTIME, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cmd_serves_the_app_and_the_healthcheck_passes(server: int) -> None:
    healthcheck = _exec_form("HEALTHCHECK")
    assert healthcheck[0] == "python"
    script = healthcheck[2].replace("127.0.0.1:8000", f"127.0.0.1:{server}")
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, result.stderr
    assert "/healthz" in script


def test_cmd_refuses_a_request_head_past_its_limit(server: int) -> None:
    """The image's server bounds the head (agent_runtime/server_protocol.py)."""
    status, body = answer_to_an_oversized_head(server)
    assert status.startswith(b"HTTP/1.1 431 ") and body["error"]["code"] == "headers_too_large"


def test_healthcheck_fails_when_nothing_answers() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = _exec_form("HEALTHCHECK")[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert (
        subprocess.run(
            [sys.executable, "-c", script], check=False, capture_output=True, timeout=10
        ).returncode
        != 0
    )


def test_cmd_is_uvicorn_serving_the_app_factory() -> None:
    command = _exec_form("CMD")
    assert command[0] == "uvicorn" and "--factory" in command and "agent_runtime.api:serve_app" in command
    assert "--no-access-log" in command, (
        "as the other hosts, and as benchmarks/runtime_latency.py measures it"
    )
    assert command[command.index("--http") + 1] == SERVER_PROTOCOL, "the request head bounded"
    assert shlex.join(command)  # exec form: no shell between the container runtime and the server


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("AGENTSTAGE_DEADLINE_SECONDS", "soon", "invalid settings: AGENTSTAGE_DEADLINE_SECONDS: "),
        ("AGENTSTAGE_BUDGETS", '[{"name": "x"}]', "invalid configuration: AGENTSTAGE_BUDGETS: "),
        (
            "HTTPS_PROXY",
            "http://[proxy.corp:3128",
            "invalid configuration: a proxy variable is not a valid URL",
        ),
    ],
)
def test_cmd_stops_on_a_configuration_error_with_one_line_and_exit_status_2(
    setting: str, value: str, said: str, tmp_path: Path
) -> None:
    """What the container's log shows: the problem, naming the variable - no traceback."""
    env = {
        **os.environ,
        "AGENTSTAGE_SQLITE_PATH": str(tmp_path / "state.db"),
        "AGENTSTAGE_LLM_ENDPOINT": "https://models.example.invalid/v1",
        "AGENTSTAGE_LLM_API_KEY": "sk-not-to-be-echoed",
        setting: value,
    }
    done = subprocess.run(
        _server_command(), check=False, cwd=RUNTIME, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"agentstage runtime: {said}"), done.stderr
    assert "sk-not-to-be-echoed" not in done.stderr
