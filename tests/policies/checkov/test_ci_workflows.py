"""The CI templates: valid GitHub workflows (offline schema check) that keep the pipeline's promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[3] / ".github" / "workflows"
INFRASTRUCTURE = WORKFLOWS / "infrastructure.yml"
AGENT_BUILD = WORKFLOWS / "agent-build.yml"


def _load(path: Path) -> dict[str, Any]:
    # YAML 1.1 reads the key "on" as True; GitHub reads it as "on".
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["on"] = document.pop(True)
    return document


def _uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


@pytest.mark.parametrize("path", [INFRASTRUCTURE, AGENT_BUILD], ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path: Path) -> None:
    """check-jsonschema ships the GitHub workflow schema, so this runs offline (actionlint cannot install here)."""
    completed = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("path", [INFRASTRUCTURE, AGENT_BUILD], ids=lambda p: p.name)
def test_no_stored_cloud_secret_and_oidc_where_azure_is_used(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "secrets." not in text, "cloud access must use OIDC, not stored secrets"
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        if "azure/login" in _uses(job):
            assert job["permissions"].get("id-token") == "write", f"{name}: azure/login needs id-token: write"
            login = next(s for s in job["steps"] if s.get("uses", "").startswith("azure/login"))
            assert login["with"] == {
                "client-id": "${{ vars.AZURE_CLIENT_ID }}",
                "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
                "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
            }


def test_infrastructure_pipeline_order_and_gates() -> None:
    jobs = _load(INFRASTRUCTURE)["jobs"]
    assert [jobs[j].get("needs") for j in ("test", "policy-check", "preview", "deploy")] == [
        "lint",
        "test",
        "policy-check",
        "preview",
    ]
    check = jobs["policy-check"]
    assert any("agentstage check --all --format sarif" in s.get("run", "") for s in check["steps"])
    assert (
        "github/codeql-action/upload-sarif" in _uses(check)
        and check["permissions"]["security-events"] == "write"
    )
    assert any("--policy-pack policies/" in s.get("run", "") for s in jobs["preview"]["steps"])
    deploy = jobs["deploy"]
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert deploy["environment"] == "${{ matrix.stack }}", (
        "each stack deploys through its own protected environment"
    )
    assert any(re.search(r"pulumi up .*--policy-pack policies/", s.get("run", "")) for s in deploy["steps"])
    assert _load(INFRASTRUCTURE)["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_agent_build_scans_before_it_pushes_by_digest() -> None:
    jobs = _load(AGENT_BUILD)["jobs"]
    image = jobs["image"]
    assert image["needs"] == "test"
    steps = [s.get("name", s.get("uses", "")) for s in image["steps"]]
    order = [
        next(i for i, s in enumerate(steps) if key in s)
        for key in (
            "checkov Dockerfile scan",
            "Build the runtime image",
            "Scan the image",
            "Push to the registry",
        )
    ]
    assert order == sorted(order)
    push = next(s for s in image["steps"] if s.get("id") == "push")
    assert "az acr login" in push["run"] and "$GITHUB_SHA" in push["run"] and "digest=" in push["run"]
    assert image["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"


def test_pull_requests_get_the_plan_diff_without_a_cloud_credential() -> None:
    """Offline on both sides: no id-token, no cloud login; the Markdown goes to the summary and a comment."""
    job = _load(INFRASTRUCTURE)["jobs"]["plan-diff"]
    assert job["if"] == "github.event_name == 'pull_request'"
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert not [uses for uses in _uses(job) if "login" in uses or "credentials" in uses]
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "the base revision must be in the clone to plan it"
    diff = next(s for s in job["steps"] if "agentstage plan --all --diff" in s.get("run", ""))
    assert diff["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert '"$BASE_SHA" --format markdown > plan-diff.md' in diff["run"]
    assert 'cat plan-diff.md >> "$GITHUB_STEP_SUMMARY"' in diff["run"]
    comment = next(s for s in job["steps"] if "gh pr comment" in s.get("run", ""))
    assert comment["continue-on-error"] is True, "a fork's read-only token must not fail the job"
    assert "--edit-last --create-if-none" in comment["run"]
