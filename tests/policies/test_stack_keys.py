"""The stack keys that control checks: real keys, named in checkov's fix, found on their line in the file."""

from __future__ import annotations

import io
import json
import shutil
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from agentstage.cli import main
from agentstage.console import Console
from core.config import StackConfig
from core.graph import Resource
from core.stacks import PROJECT_DIR, available_stacks, load_stack_config
from policies.checkov.scanner import _finding
from policies.findings import Outcome
from policies.report.stack_keys import STACK_KEYS, StackFileLines, stack_key

# Checks the shipped stacks waive that no stack key decides: the component sets what they read (or the
# passing setting cannot be deployed), so checkov's fix names the component, and SARIF the waiver.
NO_STACK_KEY = {
    "CKV_AZURE_6": "a private cluster has no authorized IP ranges to set",
    "CKV_AZURE_8": "the dashboard add-on is retired",
    "CKV_AZURE_17": "client certificates: the component",
    "CKV_AZURE_166": "image quarantine needs a scanner the stage does not run",
    "CKV_AZURE_172": "no CSI secrets provider is installed",
    "CKV_AZURE_174": "the gateway is public in every blueprint",
    "CKV_AZURE_206": "storage replication: the component",
    "CKV2_AWS_57": "secret rotation: the component",
    "CKV_AWS_116": "dead-letter queue: the component",
    "CKV_AWS_117": "Lambda in a VPC: the component",
    "CKV_AWS_272": "code signing: the component",
    "CKV_AWS_18": "S3 access logging: the component",
    "CKV_AWS_144": "S3 cross-region replication: the component",
    "CKV_AWS_120": "API caching would share per-caller answers",
    "CKV_AWS_225": "API caching would share per-caller answers",
    "CKV2_AWS_51": "a client certificate for Lambda proxy backends does not apply",
    "CKV2_AWS_8": "an AWS Backup plan: the organisation's",
    "CKV2_AWS_27": "statement logging would log callers' search text",
    "CKV_AWS_118": "enhanced monitoring: the component",
}


def _model_of(annotation: typing.Any) -> type[BaseModel] | None:
    """The model a field holds, through ``X | None``, ``tuple[X, ...]`` and ``Annotated``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, (_model_of(arg) for arg in typing.get_args(annotation))), None)


def _is_a_stack_key(path: str) -> bool:
    namespace, _, dotted = path.partition(":")
    model: type[BaseModel] | None = StackConfig
    for name in dotted.split("."):
        fields = {field.alias or key: field for key, field in (model.model_fields.items() if model else ())}
        if name not in fields:
            return False
        model = _model_of(fields[name].annotation)
    return namespace == "agentstage"


@pytest.mark.parametrize("check_id", sorted(STACK_KEYS))
def test_every_entry_names_a_key_of_the_stack_file(check_id: str) -> None:
    assert _is_a_stack_key(STACK_KEYS[check_id].path), STACK_KEYS[check_id]


def test_every_check_a_shipped_stack_waives_is_decided() -> None:
    waived = {w.check for s in available_stacks() for w in load_stack_config(s)[0].waivers}
    undecided = sorted(
        c for c in waived if c.startswith("CKV") and c not in STACK_KEYS and c not in NO_STACK_KEY
    )
    assert undecided == [], "add each to STACK_KEYS (its key) or to NO_STACK_KEY (why none)"
    assert not set(STACK_KEYS) & set(NO_STACK_KEY)


def _checkov_failure(check_id: str, evaluated: list[str] | None = None) -> str:
    owner = Resource(
        urn="urn:pulumi:test::agentstage::azure-native:web:AppServicePlan::agent-plan",
        type="azure-native:web:AppServicePlan",
        name="agent-plan",
        custom=True,
    )
    result = {
        "check_id": check_id,
        "check_name": check_id,
        "check_result": {"evaluated_keys": evaluated or []},
    }
    return _finding(result, owner, Outcome.FAILED, "").remediation


def test_checkov_fix_names_the_stack_key_that_controls_the_check() -> None:
    assert _checkov_failure("CKV_AZURE_225") == (
        "Set `agentstage:functions.zoneRedundant` in the stack file (true spreads the plan over availability "
        "zones), or waive CKV_AZURE_225 for 'agent-plan' in the stack file with a written reason."
    )
    assert stack_key("CKV_AZURE_225") is STACK_KEYS["CKV_AZURE_225"]


def test_without_a_stack_key_the_fix_says_so_and_names_what_checkov_read() -> None:
    assert _checkov_failure("CKV_AZURE_17", ["properties/clientCertEnabled"]) == (
        "No stack key controls CKV_AZURE_17: make properties/clientCertEnabled compliant in the component "
        "that creates 'agent-plan', or waive CKV_AZURE_17 for 'agent-plan' in the stack file with a written "
        "reason."
    )
    assert "the setting this check reads" not in _checkov_failure("CKV_AZURE_17")


def test_key_lines_in_a_stack_file(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(
        "config:\n"
        "  agentstage:blueprint: pilot\n"
        "  agentstage:models:\n"
        "    - name: chat\n"
        "      capacity: 10\n"
        "  agentstage:functions:\n"
        "    zoneRedundant: true\n",
        encoding="utf-8",
    )
    lines = StackFileLines(path)
    assert lines.line("agentstage:blueprint") == 2
    assert lines.line("agentstage:models[0].capacity") == 5
    assert lines.line("agentstage:functions.zoneRedundant") == 7
    assert lines.line("agentstage:functions.alwaysReady") == 6  # not set: its section
    assert lines.line("agentstage:models[3]") == 3
    assert lines.line("agentstage:waivers[0]") is None
    assert StackFileLines(tmp_path / "missing.yaml").line("agentstage:blueprint") is None
    assert StackFileLines(None).line("agentstage:blueprint") is None


def test_a_failure_the_stack_file_controls_names_the_key_in_the_table_and_sarif(tmp_path: Path) -> None:
    """pilot-dev without its zone-redundancy waiver: checkov fails the plan; the fix and the SARIF result
    both lead to `agentstage:functions` in the stack file."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", project)
    shutil.copy(PROJECT_DIR / "__main__.py", project)
    shutil.copytree(PROJECT_DIR / "stacks", project / "stacks")
    stack_file = project / "stacks" / "Pulumi.pilot-dev.yaml"
    text = stack_file.read_text(encoding="utf-8")
    waiver = text[text.index("    - check: CKV_AZURE_225") :]
    stack_file.write_text(text.replace(waiver, "").rstrip() + "\n", encoding="utf-8")
    sarif = tmp_path / "results.sarif"

    out, err = io.StringIO(), io.StringIO()
    argv = ["check", "--stack", "pilot-dev", "--project-dir", str(project)]
    assert main(argv, console=Console(out, err)) == 1, err.getvalue()
    assert "  FAIL   CKV_AZURE_225 [medium] Ensure the App Service Plan is zone redundant" in out.getvalue()
    assert "fix: Set `agentstage:functions.zoneRedundant` in the stack file" in out.getvalue()

    assert main([*argv, "--format", "sarif", "--out", str(sarif)], console=Console(io.StringIO(), err)) == 1
    [result] = [
        r for r in json.loads(sarif.read_text())["runs"][0]["results"] if r["ruleId"] == "CKV_AZURE_225"
    ]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "stacks/Pulumi.pilot-dev.yaml"
    functions = stack_file.read_text(encoding="utf-8").splitlines().index("  agentstage:functions:") + 1
    assert location["region"]["startLine"] == functions
    waived = [r for r in json.loads(sarif.read_text())["runs"][0]["results"] if r["ruleId"] == "CKV_AZURE_17"]
    waiver_line = stack_file.read_text(encoding="utf-8").splitlines().index("    - check: CKV_AZURE_17") + 1
    assert waived[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == waiver_line
