"""Every host stops on a settings mistake with one line naming it, and never a secret's value.

Each host is started as its platform starts it - the Lambda and Function App modules imported, the
container's app factory called, the task worker run - in a process of its own whose environment holds a
model key, and what that process writes is what the platform's log would show: an exception that escapes
is printed with everything it chains. pydantic's own message for a check across settings quotes the values
it was given (``input_value={'llm_api_key': 'sk-...'}``), so an error passed through unchanged leaks them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"
MODEL_KEY = "sk-live-4f1c9a7e2b"
FROM_THE_SECRET = "soon-9c2d71"

HOSTS = {
    "lambda": "import lambda_handler",
    "function app": "import function_app",
    "container": "from agent_runtime.api import serve_app; serve_app()",
    "task worker": "from agent_runtime.worker import main; raise SystemExit(main([]))",
}

MISTAKES = {
    # A check across settings: pydantic quotes every setting it was given, the model key among them.
    "settings that contradict each other": (
        {"AGENTSTAGE_AUTH_MODE": "jwt"},
        {},
        (
            "invalid settings: auth_mode 'jwt' needs AGENTSTAGE_JWT_ISSUER, AGENTSTAGE_JWT_AUDIENCE, "
            "AGENTSTAGE_JWT_JWKS_URL"
        ),
    ),
    # A value from the settings directory (what a secret delivers) is a secret, whatever its setting.
    "a setting from the secret that does not parse": (
        {},
        {"AGENTSTAGE_DEADLINE_SECONDS": FROM_THE_SECRET},
        (
            "invalid settings: AGENTSTAGE_DEADLINE_SECONDS: Input should be a valid number, unable to parse "
            "string as a number (got '<secret value>')"
        ),
    ),
    # A key holding a newline (copied in with it) would break the model call's headers on every request.
    "a key with a line break": (
        {"AGENTSTAGE_LLM_API_KEY": f"{MODEL_KEY}\n"},
        {},
        "invalid settings: AGENTSTAGE_LLM_API_KEY: holds a line break or NUL, which no HTTP header can carry",
    ),
    "an agent with a tool that does not exist": (
        {"AGENTSTAGE_AGENTS": '[{"name": "helper", "tools": ["teleport"]}]'},
        {},
        "invalid configuration: agent 'helper': unknown tool 'teleport'",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
@pytest.mark.parametrize("host", HOSTS)
def test_a_host_stops_on_a_settings_mistake_with_one_line_and_no_secret(
    host: str, mistake: str, tmp_path: Path
) -> None:
    environment, secret_files, said = MISTAKES[mistake]
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    for name, value in secret_files.items():
        (settings_dir / name).write_text(value)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("AGENTSTAGE_")},
        "AGENTSTAGE_SQLITE_PATH": str(tmp_path / "state.db"),
        "AGENTSTAGE_LLM_ENDPOINT": "https://models.example.invalid/v1",
        "AGENTSTAGE_LLM_API_KEY": MODEL_KEY,
        "AGENTSTAGE_SETTINGS_DIR": str(settings_dir),
        **environment,
    }
    done = subprocess.run(
        [sys.executable, "-c", HOSTS[host]],
        cwd=RUNTIME,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert said in output, output
    assert "input_value" not in output and "ValidationError" not in output, output
    assert "During handling" not in output and "direct cause" not in output, output  # nothing chained
    for secret in (MODEL_KEY, MODEL_KEY[:7], FROM_THE_SECRET):
        assert secret not in output, output
