"""Every rule in the registry has a fixture it passes and one it fails (a check that cannot fail is a bug)."""

from __future__ import annotations

import pytest
from rule_cases import CASES
from rule_cases.base import Build, Case
from rule_cases.identity import WILDCARD_CUSTOM_ASSIGNMENT

from policies.findings import Finding, Outcome
from policies.rules import Rule, all_rules, evaluate

RULES = all_rules()


def _verdict(rule: Rule, case: Case, build: Build) -> Finding:
    graph = case.graph(build)
    found = [f for f in evaluate(graph, case.context(), [rule]) if f.resource_name == case.target]
    assert len(found) == 1, f"{rule.id}: expected one finding on {case.target}, got {found}"
    return found[0]


def _case(rule: Rule) -> Case:
    assert rule.id in CASES, (
        f"{rule.id} has no fixtures: add a passing and a failing case in tests/policies/rule_cases/"
    )
    return CASES[rule.id]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_passes_its_passing_fixture(rule: Rule) -> None:
    finding = _verdict(rule, _case(rule), _case(rule).passing)
    assert finding.outcome is Outcome.PASSED, f"{rule.id} on {finding.resource_urn}: {finding.message}"
    assert finding.remediation == ""


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_fails_its_failing_fixture(rule: Rule) -> None:
    finding = _verdict(rule, _case(rule), _case(rule).failing)
    assert finding.outcome is Outcome.FAILED, f"{rule.id} on {finding.resource_urn}: {finding.message}"
    assert finding.remediation == rule.remediation and finding.message


def test_every_fixture_belongs_to_a_registered_rule() -> None:
    assert set(CASES) <= {r.id for r in RULES}, set(CASES) - {r.id for r in RULES}


def test_registry_has_at_least_30_rules_with_reviewable_metadata() -> None:
    assert len(RULES) >= 30
    for rule in RULES:
        assert len(rule.rationale) > 60 and len(rule.remediation) > 30, rule.id
        assert rule.reference.startswith("https://"), rule.id
    assert any(not r.mandatory for r in RULES) and any(r.mandatory for r in RULES)


def test_a_role_assignment_of_a_wildcard_custom_role_fails_too() -> None:
    rule = next(r for r in RULES if r.id == "AGS-AZ-010")
    assert (
        _verdict(rule, WILDCARD_CUSTOM_ASSIGNMENT, WILDCARD_CUSTOM_ASSIGNMENT.passing).outcome
        is Outcome.PASSED
    )
    failing = _verdict(rule, WILDCARD_CUSTOM_ASSIGNMENT, WILDCARD_CUSTOM_ASSIGNMENT.failing)
    assert failing.outcome is Outcome.FAILED and "wildcard" in failing.message


def test_stage_rules_do_not_apply_before_their_stage() -> None:
    case = CASES["AGS-AZ-030"]
    rule = next(r for r in RULES if r.id == "AGS-AZ-030")
    pilot = Case(case.target, case.passing, case.failing)  # same graph, pilot stage
    assert evaluate(pilot.graph(pilot.failing), pilot.context(), [rule]) == []
