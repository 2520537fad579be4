"""``python -m agent_runtime.worker`` as Kubernetes runs it: exit codes and what it says when it stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import boto3
import pytest
from servers import MotoServer

from agent_runtime.worker import EXIT_BUS_UNAVAILABLE, EXIT_CONFIGURATION


def run_worker(
    tmp_path: Path, host: Mapping[str, str] | None = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    """The worker with ``settings`` (and ``host``'s other variables) and nothing else of ours."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENTSTAGE_")}
    env |= dict(host or {})
    env |= {
        "AGENTSTAGE_SQLITE_PATH": str(tmp_path / "state.db"),
        "AGENTSTAGE_BUS_SQLITE_PATH": str(tmp_path / "bus.db"),
        "AGENTSTAGE_LLM_AUTH": "none",
    }
    env |= {f"AGENTSTAGE_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime.worker"],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bus_outage_is_retried_then_the_worker_exits_3_saying_why(tmp_path: Path) -> None:
    unusable = tmp_path / "bus-is-a-directory"
    unusable.mkdir()
    done = run_worker(
        tmp_path,
        bus_sqlite_path=str(unusable),
        worker_bus_retries="2",
        worker_concurrency="1",
        retry_base_seconds="0.01",
        task_queue="orders",
    )
    assert done.returncode == EXIT_BUS_UNAVAILABLE, done.stderr
    assert done.stderr.count("retry") == 2
    assert "the message bus (sqlite) failed 3 times in a row on receive of queue 'orders'" in done.stderr
    assert "queued tasks stay on the queue" in done.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"agents": json.dumps([{"name": "a", "tools": ["shell"]}])}, "agent 'a': unknown tool 'shell'"),
        ({"worker_concurrency": "0"}, "invalid settings"),
        (
            {"state_backend": "postgres", "postgres_dsn": "postgresql://127.0.0.1:1/x"},
            "tasks need AGENTSTAGE_STATE_BACKEND",
        ),
    ],
)
def test_a_configuration_error_exits_2_saying_why(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    done = run_worker(tmp_path, **settings)
    assert done.returncode == EXIT_CONFIGURATION, done.stderr
    assert message in done.stderr


def test_help_prints_usage_and_exits_without_touching_the_queue(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent_runtime.worker", "--help"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m agent_runtime.worker [-h]")
    assert "AGENTSTAGE_TASK_QUEUE" in done.stdout and "exit codes: 0 stopped by a signal" in done.stdout
    assert not (tmp_path / ".agentstage").exists()  # nothing was opened


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"api_key_roles": "[user"},
            "invalid settings: AGENTSTAGE_API_KEY_ROLES: starts with '[' but is not a JSON list",
        ),
        (
            {"agent_queues": "research=tasks-research"},
            (
                "AGENTSTAGE_AGENT_QUEUES is not valid JSON (Expecting value at position 0): it must be a JSON "
                'object, e.g. {"research": "tasks-research"}'
            ),
        ),
    ],
)
def test_a_settings_mistake_exits_2_naming_the_variable(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    done = run_worker(tmp_path, **settings)
    assert done.returncode == EXIT_CONFIGURATION, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def settings_secret(moto: MotoServer, name: str, value: str) -> tuple[str, dict[str, str]]:
    """A secret holding ``value`` on moto, and the environment that reaches it as a pod's identity would."""
    aws = {
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_DEFAULT_REGION": moto.region,
        "AWS_ACCESS_KEY_ID": moto.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto.secret_access_key,
    }
    client = boto3.client(
        "secretsmanager",
        endpoint_url=moto.endpoint_url,
        region_name=moto.region,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
    )
    return client.create_secret(Name=name, SecretString=value)["ARN"], aws


def test_the_settings_secret_is_read_at_start_as_on_lambda(tmp_path: Path, moto: MotoServer) -> None:
    """A pod's secret settings come from the Secrets Manager secret its environment names: a mistake in
    one of them stops the worker like one in its environment, naming the setting and not its value."""
    arn, aws = settings_secret(moto, "ags-prod-settings", json.dumps({"AGENTSTAGE_API_KEY_ROLES": "[oops"}))
    done = run_worker(tmp_path, aws, settings_secret_arn=arn)
    assert done.returncode == EXIT_CONFIGURATION, done.stderr
    assert "1 settings loaded (AGENTSTAGE_API_KEY_ROLES)" in done.stderr
    assert "invalid settings: AGENTSTAGE_API_KEY_ROLES: starts with '[' but is not a JSON list" in done.stderr
    assert "oops" not in done.stderr


def test_a_settings_secret_that_is_not_settings_exits_2_naming_it(tmp_path: Path, moto: MotoServer) -> None:
    arn, aws = settings_secret(moto, "ags-dev-settings", "not json")
    done = run_worker(tmp_path, aws, settings_secret_arn=arn)
    assert done.returncode == EXIT_CONFIGURATION, done.stderr
    assert f"settings secret: settings secret {arn}: its value must be a JSON object" in done.stderr
    assert "Traceback" not in done.stderr
