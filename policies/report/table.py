"""The report for people: failures first-class, waivers with their reasons, a verdict per stack.

By default a stack shows its failures grouped by resource, its waivers grouped by check and reason, and
its verdict; passes are only counted. ``verbose`` lists every resource with every check, passes too.
Several stacks end with a summary table.
"""

from __future__ import annotations

import re

from core.graph import short_type
from policies.findings import Finding, Outcome
from policies.report.model import CheckReport, StackReport, verdict_text
from policies.report.stack_keys import stack_key

_LABELS = {Outcome.WAIVED: "WAIVED"}


def _label(finding: Finding) -> str:
    if finding.outcome is Outcome.FAILED:
        return "FAIL" if finding.mandatory else "WARN"
    return _LABELS.get(finding.outcome, "PASS")


def render(report: CheckReport, *, verbose: bool = False) -> str:
    lines: list[str] = []
    for stack in report.stacks:
        lines.extend(_stack_lines(stack, verbose=verbose))
        lines.append("")
    if len(report.stacks) > 1:
        lines.extend(_summary_lines(report))
    return "\n".join(lines).rstrip("\n")


def _stack_lines(stack: StackReport, *, verbose: bool) -> list[str]:
    sources = "agentstage rules" + (" + checkov" if stack.checkov is not None else " (checkov skipped)")
    lines = [
        f"stack {stack.stack}: stage {stack.context.stage.label}, {sources}",
        f"  configuration: {stack.context.source}",
    ]
    lines += _all_lines(stack) if verbose else _problem_lines(stack)
    for waiver in stack.unused_waivers:
        lines.append(
            f"warning: waiver {waiver.check} for {waiver.resource} matches no finding: remove it or fix its ids"
        )
    if stack.checkov is not None:
        counts = ", ".join(
            f"{fw} {stack.checkov.scanned.get(fw, 0)}/{n}" for fw, n in stack.checkov.exported.items()
        )
        lines.append(f"checkov scanned/exported: {counts or 'nothing exported'}")
        if stack.checkov.unmapped:
            lines.append(
                f"warning: checkov could not see these types (no exporter mapping): {', '.join(stack.checkov.unmapped)}"
            )
    lines.append(f"verdict {stack.stack}: {verdict_text(stack)}")
    for finding in stack.blocking:
        lines.append(
            f"  blocking: {finding.check_id} on {finding.resource_name} ({short_type(finding.resource_type)})"
        )
    return lines


def _problem_lines(stack: StackReport) -> list[str]:
    """Failures by resource, then waivers by check and reason, then how many passes are not shown."""
    lines: list[str] = []
    for urn, findings in stack.by_resource():
        failed = [f for f in findings if f.outcome is Outcome.FAILED]
        if failed:
            lines += _resource_lines(urn, findings[0], failed, passed=None)
    waived: dict[tuple[str, str], list[Finding]] = {}
    for finding in stack.waived:
        waived.setdefault((finding.check_id, finding.waiver_reason), []).append(finding)
    if waived:
        lines.append(f"waived ({len(stack.waived)}):")
    for (_check, reason), group in sorted(
        waived.items(), key=lambda item: (_natural(item[0][0]), item[0][1])
    ):
        head = group[0]
        names = ", ".join(dict.fromkeys(f.resource_name for f in group))
        lines.append(f"  WAIVED {head.check_id} on {names} [{head.severity.value}] {head.title}")
        lines.append(f"         waived: {reason}")
    passed = stack.passed
    if passed:
        resources = len({f.resource_urn for f in passed})
        lines.append(
            f"passed: {len(passed)} check{'s' * (len(passed) != 1)} on {resources} "
            f"resource{'s' * (resources != 1)} (--verbose lists them)"
        )
    return lines


def _natural(check_id: str) -> tuple[str | int, ...]:
    """``CKV_AZURE_17`` before ``CKV_AZURE_101``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", check_id))


def _all_lines(stack: StackReport) -> list[str]:
    """Every resource with every check: problems first, then passes."""
    lines: list[str] = []
    for urn, findings in stack.by_resource():
        passed = sum(1 for f in findings if f.outcome is Outcome.PASSED)
        lines += _resource_lines(urn, findings[0], findings, passed=passed)
    return lines


def _resource_lines(urn: str, head: Finding, findings: list[Finding], *, passed: int | None) -> list[str]:
    counted = f"  ({passed} passed)" if passed is not None else ""
    lines = [f"{head.resource_name}  {short_type(head.resource_type)}{counted}", f"  urn: {urn}"]
    order = {Outcome.FAILED: 0, Outcome.WAIVED: 1, Outcome.PASSED: 2}
    for finding in sorted(findings, key=lambda f: (order[f.outcome], not f.mandatory, f.check_id)):
        lines.append(f"  {_label(finding):<7}{finding.check_id} [{finding.severity.value}] {finding.title}")
        if finding.outcome is Outcome.PASSED:
            continue
        lines.append(f"         {finding.message}")
        if finding.outcome is Outcome.WAIVED:
            lines.append(f"         waived: {finding.waiver_reason}")
            continue
        if finding.remediation:
            lines.append(f"         fix: {finding.remediation}")
        key = stack_key(finding.check_id)
        if key is not None and key.path not in finding.remediation:
            lines.append(f"         stack key: {key.path} ({key.passes})")
    return lines


def _summary_lines(report: CheckReport) -> list[str]:
    rows = [("stack", "verdict", "blocking", "waived", "advisory", "passed")]
    for s in report.stacks:
        counts = (s.blocking, s.waived, s.advisory, s.passed)
        rows.append((s.stack, "PASS" if s.ok else "FAIL", *(str(len(c)) for c in counts)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["summary:"]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  " + "  ".join(cells))
    failing = [s.stack for s in report.stacks if not s.ok]
    lines.append(
        f"overall: {'PASS' if report.ok else 'FAIL'} - {len(report.stacks)} stacks checked"
        + (f", failing: {', '.join(failing)}" if failing else "")
    )
    return lines
