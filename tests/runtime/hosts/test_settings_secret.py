"""Secret settings on AWS: the Lambda host reads its Secrets Manager secret (a moto server here) once at cold
start and hands the values to the runtime as settings files - never as environment variables, never in logs."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest
from servers import MotoServer

from agent_runtime.settings import Settings
from agent_runtime.settings_secret import SECRET_ARN_VARIABLE, SettingsSecretError, load_settings_secret

SECRET_VALUE = "sk-test-0123456789abcdef"


@pytest.fixture
def secrets(moto: MotoServer) -> Any:
    return boto3.client(
        "secretsmanager",
        endpoint_url=moto.endpoint_url,
        region_name=moto.region,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
    )


def secret(client: Any, name: str, value: str | None) -> str:
    created = client.create_secret(Name=name, **({"SecretString": value} if value is not None else {}))
    return created["ARN"]


def test_without_a_secret_nothing_happens(monkeypatch: pytest.MonkeyPatch, secrets: Any) -> None:
    monkeypatch.delenv(SECRET_ARN_VARIABLE, raising=False)
    assert load_settings_secret(secrets) is None


def test_an_empty_secret_starts_the_runtime_without_secret_settings(
    monkeypatch: pytest.MonkeyPatch, secrets: Any
) -> None:
    monkeypatch.setenv(SECRET_ARN_VARIABLE, secret(secrets, "agents-empty", None))
    assert load_settings_secret(secrets) is None


def test_values_become_settings_files_only_this_process_reads(
    monkeypatch: pytest.MonkeyPatch, secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    arn = secret(secrets, "agents-settings", json.dumps({"AGENTSTAGE_LLM_API_KEY": SECRET_VALUE}))
    monkeypatch.setenv(SECRET_ARN_VARIABLE, arn)
    monkeypatch.delenv("AGENTSTAGE_SETTINGS_DIR", raising=False)
    with caplog.at_level(logging.INFO, logger="agentstage.settings_secret"):
        directory = load_settings_secret(secrets)
    assert directory is not None
    monkeypatch.setenv("AGENTSTAGE_SETTINGS_DIR", str(directory))  # for the next test's isolation
    file = directory / "AGENTSTAGE_LLM_API_KEY"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and stat.S_IMODE(file.stat().st_mode) == 0o600
    assert Settings(_secrets_dir=directory).llm_api_key == SECRET_VALUE  # type: ignore[call-arg]
    assert "AGENTSTAGE_LLM_API_KEY" in caplog.text and SECRET_VALUE not in caplog.text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json " + SECRET_VALUE, "its value must be a JSON object of AGENTSTAGE_<SETTING> keys"),
        (json.dumps([SECRET_VALUE]), "its value must be a JSON object, not list"),
        (
            json.dumps({"LLM_API_KEY": SECRET_VALUE}),
            "keys must be AGENTSTAGE_<SETTING> names; not: LLM_API_KEY",
        ),
        (json.dumps({"AGENTSTAGE_MAX_STEPS": 4}), "values must be strings; not: AGENTSTAGE_MAX_STEPS"),
    ],
)
def test_a_malformed_secret_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, secrets: Any, value: str, message: str
) -> None:
    arn = secret(secrets, f"agents-bad-{abs(hash(value))}", value)
    monkeypatch.setenv(SECRET_ARN_VARIABLE, arn)
    with pytest.raises(SettingsSecretError) as raised:
        load_settings_secret(secrets)
    assert message in str(raised.value) and arn in str(raised.value)
    assert SECRET_VALUE not in str(raised.value)


def test_the_settings_files_are_removed_when_the_process_ends(tmp_path: Path) -> None:
    """The secret's values live on disk only as long as the process that read them."""
    child = textwrap.dedent(
        """
        import json, os
        from agent_runtime.settings_secret import load_settings_secret

        class Secrets:
            class exceptions:
                ResourceNotFoundException = LookupError

            def get_secret_value(self, SecretId):
                return {"SecretString": json.dumps({"AGENTSTAGE_LLM_API_KEY": "sk-child-value"})}

        os.environ["AGENTSTAGE_SETTINGS_SECRET_ARN"] = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"
        directory = load_settings_secret(Secrets())
        assert (directory / "AGENTSTAGE_LLM_API_KEY").read_text() == "sk-child-value"
        print(directory)
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, check=True)
    directory = Path(done.stdout.strip())
    assert directory.parent == tmp_path and directory.name.startswith("agentstage-settings-")
    assert not directory.exists()
