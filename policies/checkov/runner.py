"""Run the checkov command line, offline, in its own virtual environment, and read its JSON report.

checkov cannot share agentstage's environment: it pins ``packaging<24`` while pulumi needs ``>=26``, and
in one environment pip falls back to checkov 3.1, which downgrades ``openai`` to 0.28. So it lives in
``.venv-checkov`` (``scripts/install-checkov.sh``) and runs as a subprocess - once per scan, over every
framework, because each start costs seconds of imports.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentstage.errors import AgentstageError

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_CHECKOV = PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"
CHECKOV_ENV_VAR = "AGENTSTAGE_CHECKOV"
CUSTOM_CHECKS_DIR = Path(__file__).resolve().parent / "custom_checks"
TIMEOUT_SECONDS = 300

# Without these checkov calls home: the package index on import, its vendor's API for check metadata.
OFFLINE_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}


class CheckovError(AgentstageError):
    """checkov is missing, failed to run, or reported something agentstage cannot trust."""


@dataclass(frozen=True)
class FrameworkReport:
    """One framework's part of checkov's JSON report."""

    framework: str
    resource_count: int
    parsing_errors: int
    failed: list[dict[str, Any]]
    passed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


def checkov_executable() -> Path:
    """``$AGENTSTAGE_CHECKOV``, else ``.venv-checkov/bin/checkov`` in the project; a clear error if absent."""
    configured = os.environ.get(CHECKOV_ENV_VAR)
    path = Path(configured) if configured else DEFAULT_CHECKOV
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = f"${CHECKOV_ENV_VAR} points to {path}" if configured else f"{path} does not exist"
        raise CheckovError(
            f"checkov is not installed ({source}). Install it into its own environment with `make checkov` "
            f"(scripts/install-checkov.sh), or set {CHECKOV_ENV_VAR} to a checkov executable."
        )
    return path


def run_checkov(directory: Path, frameworks: Sequence[str]) -> dict[str, FrameworkReport]:
    """Scan ``directory`` once with the given frameworks and our custom checks; reports by framework."""
    command = [
        str(checkov_executable()),
        "--directory", str(directory),
        "--framework", *frameworks,
        "--output", "json",
        "--skip-download",
        "--external-checks-dir", str(CUSTOM_CHECKS_DIR),
    ]  # fmt: skip
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            env={**os.environ, **OFFLINE_ENV},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CheckovError(f"checkov did not finish within {TIMEOUT_SECONDS} s") from None
    # Exit 1 means "some check failed", which the findings carry; anything else is checkov failing.
    if completed.returncode not in (0, 1):
        raise CheckovError(f"checkov exited with {completed.returncode}: {_tail(completed.stderr)}")
    try:
        document = json.loads(completed.stdout)
    except json.JSONDecodeError:
        raise CheckovError(
            f"checkov printed no JSON report: {_tail(completed.stderr or completed.stdout)}"
        ) from None
    return parse_report(document)


def parse_report(document: Any) -> dict[str, FrameworkReport]:
    """checkov prints one object for one framework, a list for several, and a bare summary for none."""
    reports: dict[str, FrameworkReport] = {}
    for entry in document if isinstance(document, list) else [document]:
        if "check_type" not in entry:
            continue  # the bare summary checkov prints when it found nothing to scan
        summary, results = entry["summary"], entry.get("results", {})
        reports[entry["check_type"]] = FrameworkReport(
            framework=entry["check_type"],
            resource_count=int(summary.get("resource_count", 0)),
            parsing_errors=int(summary.get("parsing_errors", 0)),
            failed=results.get("failed_checks", []),
            passed=results.get("passed_checks", []),
            skipped=results.get("skipped_checks", []),
        )
    return reports


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"
