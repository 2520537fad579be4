"""Waivers turn matching failures into WAIVED with their reason; stale waivers are reported."""

from __future__ import annotations

from policy_fixtures import compliant_graph

from core.config import WaiverConfig
from policies.findings import Finding, Outcome, Severity
from policies.rules import StackContext, Stage, apply_waivers, evaluate

REASON = "Accepted for the sandbox until the vault is rebuilt"


def _failures() -> list[Finding]:
    context = StackContext(Stage.PILOT, 30, (), "fixture")
    return evaluate(compliant_graph(purge_protection=False), context)


def _outcome(findings: list[Finding], check_id: str) -> list[tuple[Outcome, str]]:
    return [(f.outcome, f.waiver_reason) for f in findings if f.check_id == check_id]


def test_waiver_by_resource_name_waives_only_that_resource():
    result = apply_waivers(_failures(), [WaiverConfig(check="AGS-AZ-021", resource="vault", reason=REASON)])
    assert _outcome(result.findings, "AGS-AZ-021") == [(Outcome.WAIVED, REASON)]
    assert result.unused == []
    assert not any(f.blocks for f in result.findings)


def test_wildcard_waiver_covers_every_resource_and_other_names_do_not_match():
    assert _outcome(
        apply_waivers(_failures(), [WaiverConfig(check="AGS-AZ-021", reason=REASON)]).findings, "AGS-AZ-021"
    ) == [(Outcome.WAIVED, REASON)]
    other = apply_waivers(
        _failures(), [WaiverConfig(check="AGS-AZ-021", resource="other-vault", reason=REASON)]
    )
    assert _outcome(other.findings, "AGS-AZ-021") == [(Outcome.FAILED, "")]
    assert [w.resource for w in other.unused] == ["other-vault"]


def test_waiver_of_a_passing_check_is_stale():
    result = apply_waivers(_failures(), [WaiverConfig(check="AGS-AZ-022", reason=REASON)])
    assert [w.check for w in result.unused] == ["AGS-AZ-022"]


def test_checkov_waivers_are_not_stale_when_checkov_did_not_run():
    waiver = WaiverConfig(check="CKV_AZURE_110", reason=REASON)
    assert apply_waivers(_failures(), [waiver], sources=("agentstage",)).unused == []
    assert apply_waivers(_failures(), [waiver]).unused == [waiver]


def test_a_finding_checkov_already_waived_inline_counts_as_a_use():
    inline = Finding(
        "checkov",
        "CKV_AZURE_110",
        "purge protection",
        Severity.MEDIUM,
        True,
        Outcome.WAIVED,
        "urn:x",
        "azure-native:keyvault:Vault",
        "vault",
        "skipped",
        waiver_reason=REASON,
    )
    result = apply_waivers([inline], [WaiverConfig(check="CKV_AZURE_110", resource="vault", reason=REASON)])
    assert result.unused == [] and result.findings == [inline]
