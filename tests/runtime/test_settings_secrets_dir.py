"""Secret settings read from files (a mounted Kubernetes Secret) instead of the process environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent_runtime.settings_contract import SETTINGS_DIR_VARIABLE

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
READ = "from agent_runtime.settings import Settings; s = Settings(); print(s.llm_api_key, s.redis_url)"


def settings_in_fresh_process(environment: dict[str, str]) -> str:
    # The directory is part of the class's configuration, read when the module is imported: a new process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSTAGE_")}
    result = subprocess.run(
        [sys.executable, "-c", READ],
        env={**env, "PYTHONPATH": str(RUNTIME), **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_each_file_is_the_setting_it_names(tmp_path: Path) -> None:
    (tmp_path / "AGENTSTAGE_LLM_API_KEY").write_text("sk-from-file")
    (tmp_path / "AGENTSTAGE_REDIS_URL").write_text("rediss://cache:6380/0")
    assert (
        settings_in_fresh_process({SETTINGS_DIR_VARIABLE: str(tmp_path)})
        == "sk-from-file rediss://cache:6380/0"
    )


def test_the_environment_wins_over_a_file(tmp_path: Path) -> None:
    (tmp_path / "AGENTSTAGE_LLM_API_KEY").write_text("sk-from-file")
    output = settings_in_fresh_process(
        {SETTINGS_DIR_VARIABLE: str(tmp_path), "AGENTSTAGE_LLM_API_KEY": "sk-env"}
    )
    assert output == "sk-env None"


def test_without_the_variable_no_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "AGENTSTAGE_LLM_API_KEY").write_text("sk-from-file")
    assert settings_in_fresh_process({}) == "None None"
