"""Run the checkov command line, offline, in its own virtual environment, and read its JSON report.

checkov cannot share agentstage's environment: it pins ``packaging<24`` while pulumi needs ``>=26``, and
in one environment pip falls back to checkov 3.1, which downgrades ``openai`` to 0.28. So it lives in
``.venv-checkov`` (``scripts/install-checkov.sh``) and runs as a subprocess - once per scan, over every
framework, because each start costs seconds of imports. :class:`WarmCheckov` hides those seconds by
starting that subprocess before the stack is planned; :func:`run_checkov` is the plain command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from core.errors import AgentstageError
from policies.checkov.driver import READY

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_CHECKOV = PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"
CHECKOV_ENV_VAR = "AGENTSTAGE_CHECKOV"
CUSTOM_CHECKS_DIR = Path(__file__).resolve().parent / "custom_checks"
DRIVER = Path(__file__).resolve().parent / "driver.py"
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


def checkov_arguments(directory: Path, frameworks: Sequence[str]) -> list[str]:
    """One scan of ``directory`` with the given frameworks and our custom checks, JSON to stdout."""
    return [
        "--directory", str(directory),
        "--framework", *frameworks,
        "--output", "json",
        "--skip-download",
        "--external-checks-dir", str(CUSTOM_CHECKS_DIR),
    ]  # fmt: skip


def run_checkov(directory: Path, frameworks: Sequence[str]) -> dict[str, FrameworkReport]:
    """Scan ``directory`` once with the checkov command line; reports by framework."""
    command = [str(checkov_executable()), *checkov_arguments(directory, frameworks)]
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
    return _read_output(completed.returncode, completed.stdout, completed.stderr)


class WarmCheckov:
    """checkov's interpreter, started now so that its seconds of imports overlap whatever comes next.

    ``agentstage check`` starts one before planning a stack; the plan usually takes longer than
    checkov's imports, so by the time the graph is exported checkov only has to scan. The process runs
    :mod:`policies.checkov.driver` and serves one :meth:`scan` (checkov breaks when one process loads
    the external checks directory twice); a later scan runs the command line. If the driver did not
    start - no ``python`` beside the checkov executable, checkov failing to import - the scan says so
    through ``warn`` and runs the command line instead: checkov is never skipped. Use it as a context
    manager, so that a driver nobody needed does not outlive the command.
    """

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self._process: subprocess.Popen[str] | None = None
        self._not_started = ""
        # A file, not a pipe: nobody reads stderr until the scan, and a full pipe would stall the import.
        # It lives as long as this object, which closes it (a ``with`` block here would close it too soon).
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        try:
            python = checkov_executable().parent / "python"
        except CheckovError:
            return  # not installed: the scan's command line reports it, with how to install checkov
        try:
            self._process = subprocess.Popen(
                [str(python), str(DRIVER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                env={**os.environ, **OFFLINE_ENV},
            )
        except OSError as error:
            self._not_started = f"cannot run {python}: {error.strerror}"

    def scan(self, directory: Path, frameworks: Sequence[str]) -> dict[str, FrameworkReport]:
        """What :func:`run_checkov` reports for the same scan, without waiting for checkov's imports."""
        process, self._process = self._process, None
        if process is None:
            return self._command_line(directory, frameworks)
        try:
            stdout, _ = process.communicate(
                json.dumps(checkov_arguments(directory, frameworks)), timeout=TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            raise CheckovError(f"checkov did not finish within {TIMEOUT_SECONDS} s") from None
        finally:
            if process.poll() is None:  # timed out, or we were interrupted
                process.kill()
                process.communicate()
        self._stderr.seek(0)
        stderr = self._stderr.read()
        if not stdout.startswith(READY + "\n"):
            self._not_started = f"{DRIVER.name} exited {process.returncode}: {_tail(stderr, 1)}"
            return self._command_line(directory, frameworks)
        return _read_output(process.returncode, stdout.removeprefix(READY + "\n"), stderr)

    def _command_line(self, directory: Path, frameworks: Sequence[str]) -> dict[str, FrameworkReport]:
        if self._not_started:
            self._warn(
                f"checkov's warm interpreter did not start ({self._not_started}); "
                "running the checkov command line instead, which takes a few seconds longer"
            )
            self._not_started = ""
        return run_checkov(directory, frameworks)

    def close(self) -> None:
        """Stop a driver that was never used and release its files."""
        if self._process is not None:
            self._process.kill()
            self._process.communicate()
            self._process = None
        self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_output(returncode: int, stdout: str, stderr: str) -> dict[str, FrameworkReport]:
    """checkov's reports from its exit status and output, or a :class:`CheckovError` saying why not."""
    # Exit 1 means "some check failed", which the findings carry; anything else is checkov failing.
    if returncode not in (0, 1):
        raise CheckovError(f"checkov exited with {returncode}: {_tail(stderr)}")
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError:
        raise CheckovError(f"checkov printed no JSON report: {_tail(stderr or stdout)}") from None
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
