"""``agentstage check``: exit codes, waivers shown with reasons, every format, usage errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from policy_fixtures import compliant_graph

from agentstage.cli import main

REASON = "Vault holds only rotated demo secrets in this sandbox"


def test_compliant_graph_exits_0(project, agentstage):
    project.stack_file()
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph())),
        "--no-checkov",
        "--project-dir",
        str(project.root),
    )
    assert run.status == 0, run.err
    assert "verdict test: PASS - 0 blocking failures" in run.out
    assert "stage pilot, agentstage rules (checkov skipped)" in run.out


def test_blocking_failure_exits_1_naming_rule_resource_and_fix(project, agentstage):
    project.stack_file()
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph(purge_protection=False))),
        "--no-checkov",
        "--project-dir",
        str(project.root),
    )
    assert run.status == 1
    assert "FAIL   AGS-AZ-021 [high] Key Vault has soft delete and purge protection" in run.out
    assert "properties.enablePurgeProtection is False" in run.out
    assert "fix: Set `properties.enablePurgeProtection: true`" in run.out
    assert "blocking: AGS-AZ-021 on vault (keyvault:Vault)" in run.out


def test_waived_failure_is_shown_with_its_reason_and_exits_0(project, agentstage):
    project.stack_file(waivers=[{"check": "AGS-AZ-021", "resource": "vault", "reason": REASON}])
    graph = project.graph_file(compliant_graph(purge_protection=False))
    run = agentstage("check", "--graph", str(graph), "--no-checkov", "--project-dir", str(project.root))
    assert run.status == 0, run.out
    assert "WAIVED AGS-AZ-021" in run.out and f"waived: {REASON}" in run.out
    payload = json.loads(
        agentstage(
            "check",
            "--graph",
            str(graph),
            "--no-checkov",
            "--format",
            "json",
            "--project-dir",
            str(project.root),
        ).out
    )
    waived = [f for f in payload["stacks"][0]["findings"] if f["outcome"] == "waived"]
    assert [(f["check_id"], f["resource_name"], f["waiver_reason"], f["blocks"]) for f in waived] == [
        ("AGS-AZ-021", "vault", REASON, False)
    ]


def test_waiver_matching_nothing_is_a_warning(project, agentstage):
    project.stack_file(waivers=[{"check": "AGS-AZ-001", "resource": "gone", "reason": REASON}])
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph())),
        "--no-checkov",
        "--project-dir",
        str(project.root),
    )
    assert run.status == 0
    assert "warning: stack test: waiver AGS-AZ-001 for gone matches no finding" in run.err
    assert "warning: waiver AGS-AZ-001 for gone matches no finding" in run.out


def test_graph_without_stack_file_uses_the_strictest_stage_and_says_so(project, agentstage):
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph())),
        "--no-checkov",
        "--project-dir",
        str(project.root),
    )
    assert "defaults of the strictest stage (enterprise): no stack file for stack 'test'" in run.err
    assert run.status == 1  # enterprise: public vault, no private endpoint, no budget
    assert "AGS-AZ-030" in run.out and "AGS-AZ-050" in run.out


def test_json_report(project, agentstage):
    project.stack_file()
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph(purge_protection=False))),
        "--no-checkov",
        "--format",
        "json",
        "--project-dir",
        str(project.root),
    )
    payload = json.loads(run.out)
    assert payload["verdict"] == "fail" and run.status == 1
    stack = payload["stacks"][0]
    assert stack["stage"] == "pilot" and stack["checkov"] is None
    assert stack["configuration"] == "stacks/Pulumi.test.yaml"
    assert stack["counts"]["blocking"] == 1


def test_junit_report_has_one_case_per_check_and_resource(project, agentstage):
    project.stack_file()
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph(purge_protection=False))),
        "--no-checkov",
        "--format",
        "junit",
        "--project-dir",
        str(project.root),
    )
    root = ET.fromstring(run.out)
    cases = root.findall("./testsuite/testcase")
    names = [(c.get("classname"), c.get("name").split()[0]) for c in cases]
    assert len(names) == len(set(names)) == int(root.get("tests"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name").split()[0]) for c in failed] == [("test.vault", "AGS-AZ-021")]
    assert failed[0].find("failure").get("type") == "mandatory"


def test_out_writes_the_report_to_a_file(project, agentstage, tmp_path):
    project.stack_file()
    target = tmp_path / "report.sarif"
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph())),
        "--no-checkov",
        "--format",
        "sarif",
        "--out",
        str(target),
        "--project-dir",
        str(project.root),
    )
    assert run.status == 0 and run.out == ""
    assert json.loads(target.read_text())["version"] == "2.1.0"
    assert f"report written to {target}" in run.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it"),
        ("{not json", "not a graph saved by `agentstage plan --format json --out`"),
        ('{"format": 99}', "unsupported graph format"),
    ],
)
def test_unreadable_graph_is_a_usage_error(project, agentstage, content, message):
    path = project.root / "bad.json"
    if content is not None:
        path.write_text(content)
    run = agentstage("check", "--graph", str(path), "--no-checkov", "--project-dir", str(project.root))
    assert run.status == 2 and message in run.err


def test_unknown_stack_is_a_usage_error(project, agentstage):
    project.stack_file()
    run = agentstage("check", "--stack", "nope", "--no-checkov", "--project-dir", str(project.root))
    assert run.status == 2 and "unknown stack 'nope'" in run.err and "stacks: test" in run.err


def test_invalid_stack_file_is_a_usage_error(project, agentstage):
    project.stack_file(waivers=[{"check": "AGS-AZ-021", "reason": "too short"}])
    run = agentstage(
        "check",
        "--graph",
        str(project.graph_file(compliant_graph())),
        "--no-checkov",
        "--project-dir",
        str(project.root),
    )
    assert run.status == 2 and "Pulumi.test.yaml" in run.err and "waivers" in run.err


def test_a_target_is_required():
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--no-checkov"])
    assert exit_info.value.code == 2
