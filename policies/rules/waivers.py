"""Waivers: a stack file may accept a failing rule or checkov check, only with a written reason.

A waived failure stays in every report (outcome WAIVED, with the reason), so an exception is never
invisible. A waiver that matches no finding is stale - the resource was renamed or the problem fixed -
and is reported, so waivers do not silently accumulate.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from core.config import WaiverConfig
from core.errors import AgentstageError
from policies.findings import Finding, Outcome
from policies.rules.registry import all_rules


@dataclass(frozen=True)
class WaiverResult:
    findings: list[Finding]
    unused: list[WaiverConfig]


def source_of(check_id: str) -> str:
    """Which engine a check id belongs to: our rules (AGS-...) or checkov (CKV_...)."""
    return "agentstage" if check_id.startswith("AGS-") else "checkov"


def refuse_unknown_rules(waivers: Sequence[WaiverConfig], source: str) -> None:
    """Refuse a waiver of an agentstage rule that does not exist: a mistyped id would only ever read as a
    stale waiver, and the failure it was meant for would stay unwaived. checkov's ids are left to the stale
    waiver warning: which exist depends on the checkov release that runs."""
    known = [rule.id for rule in all_rules()]
    for index, waiver in enumerate(waivers):
        if source_of(waiver.check) == "agentstage" and waiver.check not in known:
            close = difflib.get_close_matches(waiver.check, known, n=3, cutoff=0.6)
            areas = sorted({rule_id.rsplit("-", 1)[0] + "-*" for rule_id in known})
            raise AgentstageError(
                f"{source}: agentstage:waivers[{index}] waives {waiver.check}, which is no agentstage rule ("
                + (f"closest: {', '.join(close)}" if close else f"the rules are {', '.join(areas)}")
                + "); correct the id, or remove the waiver"
            )


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
