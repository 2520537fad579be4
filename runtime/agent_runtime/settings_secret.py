"""Secret settings from the cloud's secret store, handed to the runtime as settings files.

A deployed agent's secrets (a tool's API key, a model provider's key) are neither in its environment nor
in the stack file: they live in one secret (AWS Secrets Manager) holding a JSON object of runtime
settings, ``{"AGENTSTAGE_LLM_API_KEY": "..."}``. The host reads it once at cold start, as its own
identity, and writes each value to a file in a private directory that the settings read
(``AGENTSTAGE_SETTINGS_DIR``) - the same mechanism Kubernetes secrets use. It runs before the settings
module is imported (which fixes the directory), so it imports nothing of the runtime's.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

SECRET_ARN_VARIABLE = "AGENTSTAGE_SETTINGS_SECRET_ARN"
SETTINGS_DIR_VARIABLE = "AGENTSTAGE_SETTINGS_DIR"
_SETTING_NAME = re.compile(r"^AGENTSTAGE_[A-Z0-9_]+$")

log = logging.getLogger("agentstage.settings_secret")


class SettingsSecretError(RuntimeError):
    """The settings secret cannot be used: the message names the secret and what is wrong, never a value."""


def load_settings_secret(client: Any = None) -> Path | None:
    """Materialise the secret named by ``AGENTSTAGE_SETTINGS_SECRET_ARN``; returns the directory, or None
    when no secret is configured or it has no value yet (the stack creates it empty)."""
    arn = os.environ.get(SECRET_ARN_VARIABLE)
    if not arn:
        return None
    if client is None:
        import boto3  # provided by the Lambda runtime; imported only when a secret is configured

        client = boto3.client("secretsmanager")
    try:
        response = client.get_secret_value(SecretId=arn)
    except client.exceptions.ResourceNotFoundException:
        log.warning("settings secret %s has no value yet: starting without secret settings", arn)
        return None
    values = _settings(arn, response.get("SecretString"))
    directory = Path(tempfile.mkdtemp(prefix="agentstage-settings-"))  # 0700, this process's user only
    # The values are read once, at start; the files must not outlive the process that holds them.
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    for name, value in values.items():
        path = directory / name
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
    os.environ[SETTINGS_DIR_VARIABLE] = str(directory)
    log.info("settings secret %s: %d settings loaded (%s)", arn, len(values), ", ".join(sorted(values)))
    return directory


def _settings(arn: str, text: str | None) -> dict[str, str]:
    try:
        values = json.loads(text or "")
    except ValueError:
        raise SettingsSecretError(
            f"settings secret {arn}: its value must be a JSON object of AGENTSTAGE_<SETTING> keys to strings"
        ) from None
    if not isinstance(values, dict):
        raise SettingsSecretError(
            f"settings secret {arn}: its value must be a JSON object, not {type(values).__name__}"
        )
    bad = sorted(name for name in values if not isinstance(name, str) or not _SETTING_NAME.match(name))
    if bad:
        raise SettingsSecretError(
            f"settings secret {arn}: keys must be AGENTSTAGE_<SETTING> names; not: {', '.join(map(str, bad))}"
        )
    not_text = sorted(name for name, value in values.items() if not isinstance(value, str))
    if not_text:
        raise SettingsSecretError(
            f"settings secret {arn}: values must be strings; not: {', '.join(not_text)}"
        )
    return values


def without_secret_values(text: str, directory: Path | None) -> str:
    """``text`` (an error message about the settings) with every value the secret holds replaced: a
    mistake in a secret setting is reported by its name, never by what it says."""
    if directory is None:
        return text
    for path in directory.iterdir():
        value = path.read_text(encoding="utf-8")
        if value.strip():
            text = text.replace(value, "<secret value>")
    return text
