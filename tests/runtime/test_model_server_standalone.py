"""The scripted model server on its own: it says where it listens, lists models the OpenAI way, and its
default script calls any tool on request (``call <tool> {...}``), so custom tools can be tried locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from agent_runtime.testing import ScriptedModelServer, default_script
from agent_runtime.testing.server import MODELS

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


def test_run_standalone_it_prints_where_it_listens_and_lists_its_models() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_runtime.testing", "--port", "0"],
        env=os.environ | {"PYTHONPATH": str(RUNTIME), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("scripted model server at http://127.0.0.1:"), line
        base_url = line.split()[4]
        assert f"AGENTSTAGE_LLM_ENDPOINT={base_url} AGENTSTAGE_LLM_AUTH=none" in line
        listed = httpx.get(f"{base_url}/models", timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert listed.status_code == 200
    assert listed.json()["object"] == "list"
    assert [model["id"] for model in listed.json()["data"]] == list(MODELS)


def test_a_bad_script_file_exits_2_saying_why(tmp_path: Path) -> None:
    script = tmp_path / "rules.json"
    script.write_text(json.dumps({"rules": [{"patern": "x"}]}))
    done = subprocess.run(
        [sys.executable, "-m", "agent_runtime.testing", "--port", "0", "--script", str(script)],
        env=os.environ | {"PYTHONPATH": str(RUNTIME)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"--script {script}: rules.0.patern: Extra inputs are not permitted" in done.stderr


def test_the_openai_client_lists_and_retrieves_its_models() -> None:
    with ScriptedModelServer() as model:
        client = openai.OpenAI(base_url=model.base_url, api_key="unused", max_retries=0)
        assert [listed.id for listed in client.models.list()] == list(MODELS)
        assert client.models.retrieve("any-deployment").id == "any-deployment"


def test_the_default_script_calls_the_tool_it_is_asked_to() -> None:
    reply = default_script().reply([{"role": "user", "content": 'call shout {"text": "a, b"}'}])
    assert [(name, arguments) for _, name, arguments in reply.tool_calls] == [("shout", '{"text": "a, b"}')]
    arithmetic = default_script().reply([{"role": "user", "content": "what is 6*7?"}])
    assert [name for _, name, _ in arithmetic.tool_calls] == ["calculator"]
