"""The CI templates: valid GitHub workflows (offline schema check) that keep the pipeline's promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

GITHUB = Path(__file__).resolve().parents[3] / ".github"
WORKFLOWS = GITHUB / "workflows"
INFRASTRUCTURE = WORKFLOWS / "infrastructure.yml"
AGENT_BUILD = WORKFLOWS / "agent-build.yml"
STACK_SETUP = GITHUB / "actions" / "stack-setup" / "action.yml"
COMPUTED_MATRIX = "${{ fromJSON(needs.stacks.outputs.matrix) }}"


def _load(path: Path) -> dict[str, Any]:
    # YAML 1.1 reads the key "on" as True; GitHub reads it as "on".
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["on"] = document.pop(True)
    return document


def _uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].split("@")[0] for step in job.get("steps", []) if "uses" in step]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        (INFRASTRUCTURE, "vendor.github-workflows"),
        (AGENT_BUILD, "vendor.github-workflows"),
        (STACK_SETUP, "vendor.github-actions"),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_workflow_matches_githubs_schema(path: Path, schema: str) -> None:
    """check-jsonschema ships GitHub's workflow and action schemas, so this runs offline (actionlint cannot
    install here)."""
    completed = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("path", [INFRASTRUCTURE, AGENT_BUILD, STACK_SETUP], ids=lambda p: p.name)
def test_no_stored_cloud_secret(path: Path) -> None:
    assert "secrets." not in path.read_text(encoding="utf-8"), (
        "cloud access must use OIDC, not stored secrets"
    )


def test_every_cloud_is_reached_with_oidc() -> None:
    """The stack-setup action logs in to the stack's cloud with the workflow's OIDC token, from inputs the
    jobs fill with variables; every job that uses it may request that token."""
    steps = yaml.safe_load(STACK_SETUP.read_text(encoding="utf-8"))["runs"]["steps"]
    azure = next(s for s in steps if s.get("uses", "").startswith("azure/login"))
    assert azure["with"] == {
        "client-id": "${{ inputs.azure-client-id }}",
        "tenant-id": "${{ inputs.azure-tenant-id }}",
        "subscription-id": "${{ inputs.azure-subscription-id }}",
    }
    aws = next(s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials"))
    assert aws["with"]["role-to-assume"] == "${{ inputs.aws-role-arn }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(aws["with"])
    for path in (INFRASTRUCTURE, AGENT_BUILD):
        workflow = _load(path)
        assert workflow["permissions"] == {"contents": "read"}
        for name, job in workflow["jobs"].items():
            if "./.github/actions/stack-setup" in _uses(job) or "azure/login" in _uses(job):
                assert job["permissions"].get("id-token") == "write", f"{name}: OIDC needs id-token: write"
            for step in job.get("steps", []):
                if step.get("uses") == "./.github/actions/stack-setup":
                    given = step["with"]
                    assert given["azure-client-id"] == "${{ vars.AZURE_CLIENT_ID }}"
                    assert given["aws-role-arn"] == "${{ vars.AWS_ROLE_ARN }}"
                    assert given["stack"] == "${{ matrix.stack }}" and given["cloud"] == "${{ matrix.cloud }}"


def test_every_stack_file_is_previewed_and_deployed_from_a_computed_matrix() -> None:
    """Adding a stack file needs no workflow edit: the matrix is `agentstage stacks --format github-matrix`
    (whose content and order test_cli_stacks.py checks against stacks/)."""
    jobs = _load(INFRASTRUCTURE)["jobs"]
    stacks = jobs["stacks"]
    assert stacks["outputs"]["matrix"] == "${{ steps.stacks.outputs.matrix }}"
    computed = next(s for s in stacks["steps"] if s.get("id") == "stacks")
    assert (
        'echo "matrix=$(.venv/bin/agentstage stacks --format github-matrix)" >> "$GITHUB_OUTPUT"'
        in (computed["run"])
    )
    for name in ("preview", "deploy"):
        assert jobs[name]["strategy"]["matrix"] == COMPUTED_MATRIX, name
        assert "stacks" in jobs[name]["needs"]
    deploy = jobs["deploy"]["strategy"]
    assert (deploy["max-parallel"], deploy["fail-fast"]) == (1, True), (
        "in delivery order, stopping at a failure"
    )


def test_a_stack_is_created_on_its_first_run_with_its_secrets_provider() -> None:
    steps = yaml.safe_load(STACK_SETUP.read_text(encoding="utf-8"))["runs"]["steps"]
    select = next(s for s in steps if s.get("name", "").startswith("Select the stack"))
    assert 'pulumi stack select "$STACK" --create --secrets-provider "$SECRETS_PROVIDER"' in select["run"]
    assert select["env"]["SECRETS_PROVIDER"] == "${{ inputs.secrets-provider }}"


def test_the_pushed_digest_flows_from_build_to_deploy() -> None:
    """agent-build calls the infrastructure workflow with the image it pushed, and publishes it for the
    infrastructure runs of their own; deploy pins it, then refuses a tag or the placeholder, then deploys."""
    build = _load(AGENT_BUILD)["jobs"]
    assert build["image"]["outputs"]["image"] == "${{ steps.push.outputs.image }}"
    push = next(s for s in build["image"]["steps"] if s.get("id") == "push")
    assert 'echo "image=$IMAGE@$digest" >> "$GITHUB_OUTPUT"' in push["run"]
    published = next(
        s for s in build["image"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    )
    assert published["with"]["name"] == "runtime-image"
    handoff = build["deploy"]
    assert handoff["uses"] == "./.github/workflows/infrastructure.yml"
    assert handoff["with"] == {"image": "${{ needs.image.outputs.image }}"}
    assert handoff["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"

    infrastructure = _load(INFRASTRUCTURE)
    assert infrastructure["on"]["workflow_call"]["inputs"]["image"]["type"] == "string"
    deploy = infrastructure["jobs"]["deploy"]
    assert deploy["permissions"]["actions"] == "read", "downloads agent-build's runtime-image artifact"
    assert set(deploy["permissions"]) <= set(handoff["permissions"]), (
        "a called job gets no more than its caller"
    )
    names = [s.get("name", s.get("uses", "")) for s in deploy["steps"]]
    pin, gate, up = (
        names.index("Pin the runtime image the agent-build workflow pushed"),
        names.index("agentstage check --deploy"),
        names.index("pulumi up"),
    )
    assert pin < gate < up
    pinning = deploy["steps"][pin]
    assert pinning["env"]["PUSHED"] == "${{ inputs.image }}"
    assert 'gh run download "$run" --name runtime-image' in pinning["run"]
    assert 'pulumi config set --path agentstage:kubernetes.image "$PUSHED"' in pinning["run"]
    assert "--deploy" in deploy["steps"][gate]["run"]


def test_infrastructure_pipeline_order_and_gates() -> None:
    jobs = _load(INFRASTRUCTURE)["jobs"]
    assert [jobs[j].get("needs") for j in ("test", "policy-check", "preview", "deploy")] == [
        "lint",
        "test",
        ["policy-check", "stacks"],
        ["preview", "stacks"],
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
