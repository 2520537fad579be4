"""``scan(graph)``: export the graph, run checkov once over every framework, return findings.

Verdicts:

- checkov offline reports no severity (its severities come from its vendor's API, which needs a key),
  so a finding's severity is checkov's when present (our custom checks state their own), else ``medium``.
- Every checkov failure is mandatory: a scanner that never blocks is no gate. A check that is no real
  risk for one resource is waived with a written reason - by the stack file (``waivers``) or, where
  the check's passing setting cannot exist for that resource at all, by :mod:`policies.checkov.by_design`.
- Waived checks are written into the exported files where the format allows (ARM ``metadata.checkov``,
  Kubernetes annotations), so checkov itself reports them skipped with the reason; Terraform plans and
  Dockerfiles have no inline form and are matched after the run. Either way the finding is ``waived``.

Trust: for every framework exported, checkov must report scanning exactly as many resources as were
written, and no parsing errors; a file it cannot read counts as nothing and it still exits 0, so any
mismatch raises :class:`ScanMismatchError` instead of passing silently.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from core.config import WaiverConfig
from core.errors import ExitStatus
from core.graph import Resource, ResourceGraph
from policies.checkov.by_design import by_design_waivers
from policies.checkov.runner import CheckovError, FrameworkReport, WarmCheckov, run_checkov
from policies.export import Export, Suppression, export_graph
from policies.export.dockerfile import dockerfile_resource
from policies.export.terraform import FRAMEWORK as TERRAFORM_PLAN
from policies.findings import Finding, Outcome, Severity
from policies.report.stack_keys import stack_key

SOURCE = "checkov"


class ScanMismatchError(CheckovError):
    """checkov scanned a different number of resources than were exported: its results can't be trusted."""

    exit_status = ExitStatus.INTERNAL


@dataclass
class ScanResult:
    """What one scan found, and what it could not look at.

    ``exported``/``scanned``: resources written / counted by checkov, per framework (always equal,
    or :func:`scan` raises). ``unmapped``: resource types no exporter maps yet - extend the type maps.
    ``not_scannable``: types with nothing for checkov to read, with the reason. ``skipped_checks``:
    check id -> reasons, for every check waived on some resource in this scan.
    """

    findings: list[Finding]
    exported: dict[str, int]
    scanned: dict[str, int]
    unmapped: list[str] = field(default_factory=list)
    not_scannable: dict[str, str] = field(default_factory=dict)
    skipped_checks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocks]


def scan(
    graph: ResourceGraph,
    *,
    waivers: Iterable[WaiverConfig] = (),
    dockerfiles: Sequence[Path] = (),
    warm: WarmCheckov | None = None,
) -> ScanResult:
    """Scan ``graph``'s cloud resources and ``dockerfiles`` with checkov and our custom checks.

    ``waivers`` are the stack file's; those naming our own rules (not ``CKV``) are ignored here.
    ``dockerfiles`` (e.g. ``runtime/Dockerfile``) are scanned as they are; waive by their path as given.
    ``warm``: a checkov started earlier, which saves its imports; without it the command line runs.
    """
    subjects = [*graph.cloud_resources(), *(dockerfile_resource(p) for p in dockerfiles)]
    suppressions = _suppressions(subjects, [w for w in waivers if w.check.startswith("CKV")])
    exported = export_graph(graph, suppressions, dockerfiles)
    result = ScanResult(
        findings=[],
        exported={e.framework: e.expected for e in exported.exports},
        scanned={},
        unmapped=exported.unmapped,
        not_scannable=exported.not_scannable,
    )
    if not exported.exports:
        return result
    with tempfile.TemporaryDirectory(prefix="agentstage-checkov-") as tmp:
        root = Path(tmp)
        for export in exported.exports:
            export.write(root / export.framework)
        run = warm.scan if warm is not None else run_checkov
        reports = run(root, [e.framework for e in exported.exports])
    for export in exported.exports:
        report = reports.get(export.framework)
        result.scanned[export.framework] = _verified_count(export, report)
        if report:
            result.findings.extend(_findings(export, report, suppressions))
    for finding in result.findings:
        if finding.outcome is Outcome.WAIVED:
            reasons = result.skipped_checks.setdefault(finding.check_id, [])
            if finding.waiver_reason not in reasons:
                reasons.append(finding.waiver_reason)
    return result


def _verified_count(export: Export, report: FrameworkReport | None) -> int:
    """checkov's resource count for ``export``, if it is exactly what was exported and parsed cleanly."""
    scanned = report.resource_count if report else 0
    unparsed = report.parsing_errors if report else 0
    if scanned != export.expected or unparsed:
        problem = f"checkov scanned {scanned} {export.framework} resources of {export.expected} exported"
        if unparsed:
            problem += f" and could not parse {unparsed} files"
        raise ScanMismatchError(
            f"{problem}: the exported shape is wrong somewhere, so its results cannot be trusted"
        )
    return scanned


def _suppressions(subjects: Iterable[Resource], waivers: Sequence[WaiverConfig]) -> dict[str, list[Suppression]]:
    """Stack-file and by-design waivers, resolved to the resources (by URN) they apply to."""
    found: dict[str, list[Suppression]] = {}
    for resource in subjects:
        entries = [Suppression(w.check, w.reason) for w in waivers if w.covers(resource.name)]
        entries += by_design_waivers(resource)
        unique: dict[str, Suppression] = {}
        for entry in entries:
            unique.setdefault(entry.check_id, entry)  # the stack file's reason wins over a by-design one
        if unique:
            found[resource.urn] = list(unique.values())
    return found


def _findings(
    export: Export, report: FrameworkReport, suppressions: dict[str, list[Suppression]]
) -> list[Finding]:
    findings: dict[tuple[str, str, Outcome], Finding] = {}
    for outcome, results in (
        (Outcome.FAILED, report.failed),
        (Outcome.PASSED, report.passed),
        (Outcome.WAIVED, report.skipped),
    ):
        for result in results:
            owner = _owner(export, result)
            verdict, reason = outcome, ""
            if outcome is Outcome.WAIVED:
                reason = result.get("check_result", {}).get("suppress_comment") or ""
            elif outcome is Outcome.FAILED:
                # Frameworks without inline waivers (Terraform plans, Dockerfiles) are matched here.
                match = next(
                    (s for s in suppressions.get(owner.urn, ()) if s.check_id == result["check_id"]), None
                )
                if match:
                    verdict, reason = Outcome.WAIVED, match.reason
            finding = _finding(result, owner, verdict, reason)
            # A workload and its pod template are one graph resource: keep one verdict per check.
            findings.setdefault((finding.check_id, owner.urn, verdict), finding)
    return list(findings.values())


def _owner(export: Export, result: dict[str, Any]) -> Resource:
    key = (
        result["resource"] if export.framework == TERRAFORM_PLAN else PurePosixPath(result["file_path"]).name
    )
    try:
        return export.owners[key]
    except KeyError:
        raise CheckovError(
            f"checkov reported {result['check_id']} on '{key}', which agentstage did not export"
        ) from None


def _finding(result: dict[str, Any], owner: Resource, outcome: Outcome, waiver_reason: str) -> Finding:
    check_id = result["check_id"]
    title = result.get("check_name") or check_id
    evaluated = result.get("check_result", {}).get("evaluated_keys") or []
    where = f" (evaluated: {', '.join(evaluated)})" if evaluated else ""
    remediation = _remediation(check_id, owner.name, evaluated, result.get("guideline") or "")
    return Finding(
        source=SOURCE,
        check_id=check_id,
        title=title,
        severity=_severity(result.get("severity")),
        mandatory=True,
        outcome=outcome,
        resource_urn=owner.urn,
        resource_type=owner.type,
        resource_name=owner.name,
        # The title is reported beside the message; the message says what checkov evaluated.
        message=f"checkov {outcome.value}{where or ' (no settings named by the check)'}",
        remediation=remediation,
        waiver_reason=waiver_reason,
    )


def _remediation(check_id: str, resource_name: str, evaluated: list[str], guideline: str) -> str:
    """The stack key that controls the check when one does (:mod:`policies.report.stack_keys`), else the
    component; checkov's guideline, when it gives one, follows."""
    waive = f"or waive {check_id} for '{resource_name}' in the stack file with a written reason."
    key = stack_key(check_id)
    if key is not None:
        text = f"Set `{key.path}` in the stack file ({key.passes}), {waive}"
    elif guideline:
        return guideline
    else:
        setting = ", ".join(evaluated) or "the setting its title names"
        text = (
            f"No stack key controls {check_id}: make {setting} compliant in the component that creates "
            f"'{resource_name}', {waive}"
        )
    return f"{text} {guideline}" if guideline else text


# checkov's severity names (with an API key, or stated by our custom checks) -> ours.
_SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
}


def _severity(reported: str | None) -> Severity:
    """checkov's severity when it states one (INFO/NONE count as low), else medium."""
    if not reported:
        return Severity.MEDIUM
    return _SEVERITIES.get(reported.lower(), Severity.LOW)
