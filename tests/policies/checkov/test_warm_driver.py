"""The warm checkov driver: the same verdicts as the command line, and never a silently skipped checkov.

Apart from the first test, the driver is replaced by small scripts that fail in each way a real one can.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import stack_config

from core.graph import ResourceGraph
from policies.checkov import CheckovError, ScanResult, scan
from policies.checkov import runner as runner_module
from policies.checkov.driver import READY
from policies.checkov.runner import CHECKOV_ENV_VAR, FrameworkReport, WarmCheckov

STACK = "pilot-prod"  # the largest shipped stack
FALLBACK = {"arm": FrameworkReport("arm", 1, 0, [], [], [])}


def test_warm_driver_reports_exactly_what_the_command_line_reports(
    stack_graph: Callable[[str], ResourceGraph], stack_scan: Callable[[str], ScanResult]
) -> None:
    warnings: list[str] = []
    with WarmCheckov(warnings.append) as warm:
        warm_result = scan(stack_graph(STACK), waivers=stack_config(STACK).waivers, warm=warm)
    cold_result = stack_scan(STACK)  # the checkov command line
    assert warnings == []
    assert warm_result.scanned == warm_result.exported == cold_result.scanned
    # checkov orders its results differently from run to run (the command line too): compare as sets.
    assert sorted(map(repr, warm_result.findings)) == sorted(map(repr, cold_result.findings))
    assert warm_result.findings
    assert warm_result.skipped_checks == cold_result.skipped_checks


@pytest.fixture
def fallback_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The frameworks of every scan that fell back to the checkov command line (which is faked)."""
    runs: list[list[str]] = []

    def command_line(directory: Path, frameworks: list[str]) -> dict[str, FrameworkReport]:
        runs.append(list(frameworks))
        return FALLBACK

    monkeypatch.setattr(runner_module, "run_checkov", command_line)
    return runs


def _driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str) -> None:
    script = tmp_path / "driver.py"
    script.write_text(source, encoding="utf-8")
    monkeypatch.setattr(runner_module, "DRIVER", script)


def test_a_driver_that_cannot_import_checkov_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fallback_runs: list[list[str]]
) -> None:
    _driver(monkeypatch, tmp_path, "raise ImportError(\"No module named 'checkov.main'\")\n")
    warnings: list[str] = []
    with WarmCheckov(warnings.append) as warm:
        assert warm.scan(tmp_path, ["arm"]) is FALLBACK
    assert fallback_runs == [["arm"]]
    assert len(warnings) == 1
    assert "did not start" in warnings[0] and "No module named 'checkov.main'" in warnings[0]
    assert "running the checkov command line instead" in warnings[0]


def test_no_python_beside_checkov_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fallback_runs: list[list[str]]
) -> None:
    checkov = tmp_path / "bin" / "checkov"
    checkov.parent.mkdir()
    checkov.write_text("#!/bin/sh\n", encoding="utf-8")
    checkov.chmod(0o755)
    monkeypatch.setenv(CHECKOV_ENV_VAR, str(checkov))
    warnings: list[str] = []
    with WarmCheckov(warnings.append) as warm:
        assert warm.scan(tmp_path, ["kubernetes"]) is FALLBACK
    assert fallback_runs == [["kubernetes"]]
    assert len(warnings) == 1 and f"cannot run {checkov.parent / 'python'}" in warnings[0]


def test_checkov_failing_after_the_driver_started_is_an_error_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fallback_runs: list[list[str]]
) -> None:
    source = f"import sys\nprint({READY!r})\nprint('checkov crashed', file=sys.stderr)\nsys.exit(2)\n"
    _driver(monkeypatch, tmp_path, source)
    with (
        WarmCheckov(pytest.fail) as warm,
        pytest.raises(CheckovError, match="exited with 2: checkov crashed"),
    ):
        warm.scan(tmp_path, ["arm"])
    assert fallback_runs == []


def test_one_driver_serves_one_scan_and_a_second_runs_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fallback_runs: list[list[str]]
) -> None:
    # Prints an empty report for whatever arguments it receives, as checkov does for an empty directory.
    source = f"import json, sys\nprint({READY!r})\njson.loads(sys.stdin.read())\nprint('[]')\n"
    _driver(monkeypatch, tmp_path, source)
    with WarmCheckov(pytest.fail) as warm:
        assert warm.scan(tmp_path, ["arm"]) == {}
        assert warm.scan(tmp_path, ["arm"]) is FALLBACK
    assert fallback_runs == [["arm"]]


def test_an_unused_driver_is_stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    source = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    _driver(monkeypatch, tmp_path, source)
    with WarmCheckov(pytest.fail):
        while not (pid_file.exists() and pid_file.read_text()):
            time.sleep(0.01)
        pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
