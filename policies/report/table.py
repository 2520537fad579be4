"""The report for people: grouped by resource, problems first-class, passes counted."""

from __future__ import annotations

from core.graph import short_type
from policies.findings import Finding, Outcome
from policies.report.model import CheckReport, StackReport, verdict_text

_LABELS = {Outcome.WAIVED: "WAIVED"}


def _label(finding: Finding) -> str:
    if finding.outcome is Outcome.FAILED:
        return "FAIL" if finding.mandatory else "WARN"
    return _LABELS.get(finding.outcome, "PASS")


def render(report: CheckReport) -> str:
    lines: list[str] = []
    for stack in report.stacks:
        lines.extend(_stack_lines(stack))
        lines.append("")
    if len(report.stacks) > 1:
        failing = [s.stack for s in report.stacks if not s.ok]
        lines.append(
            f"overall: {'PASS' if report.ok else 'FAIL'} - {len(report.stacks)} stacks checked"
            + (f", failing: {', '.join(failing)}" if failing else "")
        )
    return "\n".join(lines).rstrip("\n")


def _stack_lines(stack: StackReport) -> list[str]:
    sources = "agentstage rules" + (" + checkov" if stack.checkov is not None else " (checkov skipped)")
    lines = [
        f"stack {stack.stack}: stage {stack.context.stage.label}, {sources}",
        f"  configuration: {stack.context.source}",
    ]
    for urn, findings in stack.by_resource():
        shown = [f for f in findings if f.outcome is not Outcome.PASSED]
        passed = len(findings) - len(shown)
        head = findings[0]
        lines.append(f"{head.resource_name}  {short_type(head.resource_type)}  ({passed} passed)")
        if shown:
            lines.append(f"  urn: {urn}")
        for finding in sorted(
            shown, key=lambda f: (f.outcome is not Outcome.FAILED, not f.mandatory, f.check_id)
        ):
            lines.append(
                f"  {_label(finding):<7}{finding.check_id} [{finding.severity.value}] {finding.title}"
            )
            lines.append(f"         {finding.message}")
            if finding.outcome is Outcome.WAIVED:
                lines.append(f"         waived: {finding.waiver_reason}")
            elif finding.remediation:
                lines.append(f"         fix: {finding.remediation}")
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
