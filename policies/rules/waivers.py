"""Waivers: a stack file may accept a failing rule or checkov check, only with a written reason.

A waived failure stays in every report (outcome WAIVED, with the reason), so an exception is never
invisible. A waiver that matches no finding is stale - the resource was renamed or the problem fixed -
and is reported, so waivers do not silently accumulate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from core.config import WaiverConfig
from policies.findings import Finding, Outcome


@dataclass(frozen=True)
class WaiverResult:
    findings: list[Finding]
    unused: list[WaiverConfig]


def source_of(check_id: str) -> str:
    """Which engine a check id belongs to: our rules (AGS-...) or checkov (CKV_...)."""
    return "agentstage" if check_id.startswith("AGS-") else "checkov"


def matches(waiver: WaiverConfig, finding: Finding) -> bool:
    return waiver.check == finding.check_id and waiver.covers(finding.resource_name)


def apply_waivers(
    findings: Sequence[Finding],
    waivers: Iterable[WaiverConfig],
    *,
    sources: Iterable[str] = ("agentstage", "checkov"),
) -> WaiverResult:
    """Mark failures a waiver covers as WAIVED; list waivers that matched nothing.

    ``sources`` are the engines that ran: a checkov waiver is not stale when checkov was skipped.
    A finding the engine already reported as waived (an inline checkov skip) counts as a match.
    """
    waivers = list(waivers)
    used: set[int] = set()
    result = []
    for finding in findings:
        for index, waiver in enumerate(waivers):
            if not matches(waiver, finding):
                continue
            if finding.outcome is Outcome.FAILED:
                finding = replace(finding, outcome=Outcome.WAIVED, waiver_reason=waiver.reason)
                used.add(index)
            elif finding.outcome is Outcome.WAIVED:
                used.add(index)
        result.append(finding)
    ran = set(sources)
    unused = [w for i, w in enumerate(waivers) if i not in used and source_of(w.check) in ran]
    return WaiverResult(result, unused)
