"""The CrossGuard pack: one policy per rule, and each behaves like the rule ``agentstage check`` runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from crossguard_harness import run_pack
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from rule_cases import CASES

from core.config import WaiverConfig
from policies import crossguard
from policies.rules import Rule, StackContext, Stage, all_rules

RULES = all_rules()


def _violations(rule: Rule, context: StackContext, build) -> list[tuple[str, str | None]]:
    case = CASES[rule.id]
    policy = crossguard.policy(rule, lambda: context)
    return run_pack([policy], case.graph(build))[policy.name]


def test_one_policy_per_rule_with_its_enforcement_level_and_kind():
    policies = crossguard.policies(lambda: StackContext.strictest("test"))
    assert len(policies) == len(RULES) == len({p.name for p in policies})
    for rule, policy in zip(RULES, policies, strict=True):
        assert policy.name.startswith(rule.id.lower())
        assert policy.enforcement_level is (
            EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY
        )
        expected = (
            StackValidationPolicy if rule.needs_graph or rule.stack_scoped else ResourceValidationPolicy
        )
        assert isinstance(policy, expected), rule.id
        assert policy.remediation_steps == rule.remediation and policy.url == rule.reference


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_policy_reports_the_failing_fixture_and_passes_the_passing_one(rule: Rule, monkeypatch):
    monkeypatch.setenv("PULUMI_STACK", "test")
    case = CASES[rule.id]
    urns = {r.urn for r in case.graph(case.failing) if r.name == case.target}
    failing = [v for v in _violations(rule, case.context(), case.failing) if v[1] in urns or v[1] is None]
    assert failing, f"{rule.id}: CrossGuard reported nothing for the failing fixture's {case.target}"
    for message, _urn in failing:
        assert message.startswith(f"{case.target}: ") and "Fix: " in message
    passing = [v for v in _violations(rule, case.context(), case.passing) if v[1] in urns or v[1] is None]
    assert passing == [], f"{rule.id}: {passing}"


def test_waived_failures_are_not_reported():
    rule = next(r for r in RULES if r.id == "AGS-AZ-021")
    waiver = WaiverConfig(
        check="AGS-AZ-021", resource="vault", reason="Sandbox vault recreated from the golden image"
    )
    context = StackContext(Stage.PILOT, 30, (waiver,), "fixture")
    assert _violations(rule, context, CASES[rule.id].failing) == []


def test_pack_context_reads_the_running_stack_file(project, monkeypatch):
    project.stack_file(
        waivers=[{"check": "AGS-AZ-021", "reason": "Sandbox vault recreated from the golden image"}]
    )
    monkeypatch.setenv("PULUMI_STACK", "test")
    context = crossguard.pack_context(project.root)
    assert (context.stage, context.stack_file, [w.check for w in context.waivers]) == (
        Stage.PILOT,
        Path("stacks/Pulumi.test.yaml"),
        ["AGS-AZ-021"],
    )
    monkeypatch.delenv("PULUMI_STACK")
    assert crossguard.pack_context(project.root).stage is Stage.ENTERPRISE


def test_policy_pack_construction_stays_in_main():
    """Importing the adapters must not start a server; only __main__ constructs PolicyPack."""
    root = Path(crossguard.__file__).parent
    constructing = [p.name for p in root.rglob("*.py") if "PolicyPack(" in p.read_text()]
    assert constructing == ["__main__.py"]


def test_pack_project_file_runs_python_from_the_project_venv():
    import yaml

    root = Path(crossguard.__file__).parent
    settings = yaml.safe_load((root / "PulumiPolicy.yaml").read_text())
    assert settings["runtime"]["name"] == "python" and settings["version"]
    assert (root / settings["runtime"]["options"]["virtualenv"] / "bin" / "python").exists()
    compile((root / "__main__.py").read_text(), "__main__.py", "exec")
