"""Locating checkov, reading its report, and refusing results that cannot be trusted (no checkov run here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from checkov_graphs import aws_graph, azure_pilot

from policies.checkov import CheckovError, ScanMismatchError, checkov_executable, scan
from policies.checkov import scanner as scan_module
from policies.checkov.runner import CHECKOV_ENV_VAR, DEFAULT_CHECKOV, FrameworkReport, parse_report


def test_missing_checkov_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CHECKOV_ENV_VAR, str(tmp_path / "nowhere" / "checkov"))
    with pytest.raises(CheckovError, match=r"make checkov.*scripts/install-checkov\.sh.*AGENTSTAGE_CHECKOV"):
        checkov_executable()


def test_default_checkov_is_the_projects_own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHECKOV_ENV_VAR, raising=False)
    assert DEFAULT_CHECKOV.parts[-3:] == (".venv-checkov", "bin", "checkov")
    assert checkov_executable() == DEFAULT_CHECKOV, "run `make checkov` (scripts/install-checkov.sh) first"


def _framework(check_type: str, count: int, **results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "check_type": check_type,
        "summary": {"resource_count": count, "parsing_errors": 0, "passed": 0, "failed": 0},
        "results": {"failed_checks": results.get("failed", []), "passed_checks": [], "skipped_checks": []},
    }


def test_report_shapes_one_framework_several_and_none() -> None:
    assert set(parse_report(_framework("arm", 3))) == {"arm"}
    assert set(parse_report([_framework("arm", 3), _framework("kubernetes", 2)])) == {"arm", "kubernetes"}
    assert parse_report({"passed": 0, "failed": 0, "skipped": 0, "resource_count": 0}) == {}


def _fake_checkov(monkeypatch: pytest.MonkeyPatch, reports: dict[str, FrameworkReport]) -> None:
    monkeypatch.setattr(scan_module, "run_checkov", lambda directory, frameworks: reports)


def test_a_shape_checkov_scans_as_nothing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_checkov(monkeypatch, {})  # checkov read no ARM resource and exited 0
    with pytest.raises(ScanMismatchError, match=r"scanned 0 arm resources of 15 exported"):
        scan(azure_pilot())


def test_parsing_errors_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_checkov(monkeypatch, {"terraform_plan": FrameworkReport("terraform_plan", 5, 1, [], [], [])})
    with pytest.raises(ScanMismatchError, match=r"could not parse 1 files"):
        scan(aws_graph())


def test_a_result_for_something_not_exported_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    stray = {"check_id": "CKV_AWS_41", "resource": "aws.default", "file_path": "/plan.json"}
    _fake_checkov(monkeypatch, {"terraform_plan": FrameworkReport("terraform_plan", 5, 0, [stray], [], [])})
    with pytest.raises(CheckovError, match=r"CKV_AWS_41 on 'aws.default'"):
        scan(aws_graph())


def test_an_empty_graph_runs_no_checkov(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(directory: Path, frameworks: list[str]) -> dict[str, FrameworkReport]:
        raise AssertionError("checkov must not start for nothing")

    monkeypatch.setattr(scan_module, "run_checkov", refuse)
    graph = azure_pilot()
    graph.resources = [r for r in graph.resources if r.type == "azure-native:storage:Blob"]
    result = scan(graph)
    assert (
        result.findings == []
        and result.exported == {}
        and "azure-native:storage:Blob" in result.not_scannable
    )
