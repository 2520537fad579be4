"""SARIF 2.1.0 for GitHub code scanning: one run, rules with help, one result per problem.

Results point at the stack file (the artifact a reviewer changes, or where a waiver goes): a waived
finding at its waiver's line, another at the line of the key that controls it
(:mod:`policies.report.stack_keys`), else at line 1; ``logicalLocations`` name the resource by URN.
Waived failures are results with an accepted external suppression carrying the reason, so code
scanning shows them as dismissed rather than hiding them. ``partialFingerprints`` keep results distinct
where several share a line.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from policies.findings import Finding, Outcome, Severity
from policies.report.model import CheckReport, StackReport
from policies.report.stack_keys import StackFileLines, stack_key
from policies.rules import rule_by_id
from policies.rules.waivers import matches

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
CHECKOV_INDEX = "https://www.checkov.io/5.Policy%20Index/all.html"
# GitHub ranks security alerts by this CVSS-like number (critical >= 9, high >= 7, medium >= 4).
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
}


def _level(finding: Finding) -> str:
    return "error" if finding.mandatory else "warning"


def _rule(finding: Finding) -> dict[str, Any]:
    if finding.source == "agentstage":
        rule = rule_by_id(finding.check_id)
        text = f"{rule.rationale}\n\nRemediation: {rule.remediation}"
        markdown = (
            f"**Why:** {rule.rationale}\n\n**Fix:** {rule.remediation}\n\n[Reference]({rule.reference})"
        )
        help_uri, description = rule.reference, rule.rationale
    else:
        guideline = finding.remediation if finding.remediation.startswith("http") else ""
        help_uri = guideline or CHECKOV_INDEX
        description = finding.title
        text = finding.remediation or f"See {help_uri}"
        markdown = f"checkov check `{finding.check_id}`: {finding.title}\n\n{text}"
    return {
        "id": finding.check_id,
        "name": "".join(word[:1].upper() + word[1:] for word in re.findall(r"[A-Za-z0-9]+", finding.title)),
        "shortDescription": {"text": finding.title},
        "fullDescription": {"text": description},
        "help": {"text": text, "markdown": markdown},
        "helpUri": help_uri,
        "defaultConfiguration": {"level": _level(finding)},
        "properties": {
            "tags": ["security", "infrastructure", finding.source],
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "precision": "very-high",
        },
    }


def _key_of(finding: Finding, stack: StackReport) -> str | None:
    """The stack-file key a finding is decided at: its waiver (the first that matches, as applied), else
    the key that controls the check."""
    if finding.outcome is Outcome.WAIVED:
        waiver = next((i for i, w in enumerate(stack.context.waivers) if matches(w, finding)), None)
        if waiver is not None:
            return f"agentstage:waivers[{waiver}]"
    key = stack_key(finding.check_id)
    return key.path if key is not None else None


def _result(finding: Finding, stack: StackReport, rule_index: int, lines: StackFileLines) -> dict[str, Any]:
    artifact = stack.artifact.as_posix()
    key = _key_of(finding, stack)
    line = (lines.line(key) if key else None) or 1
    fingerprint = hashlib.sha256(f"{finding.check_id}|{finding.resource_urn}".encode()).hexdigest()
    result: dict[str, Any] = {
        "ruleId": finding.check_id,
        "ruleIndex": rule_index,
        "level": _level(finding),
        "message": {"text": f"{finding.resource_name} ({finding.resource_type}): {finding.message}"},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": artifact}, "region": {"startLine": line}},
                "logicalLocations": [
                    {
                        "name": finding.resource_name,
                        "fullyQualifiedName": finding.resource_urn,
                        "kind": "resource",
                    }
                ],
            }
        ],
        "partialFingerprints": {"agentstageFinding/v1": fingerprint},
        "properties": {"stack": stack.stack, "source": finding.source, "mandatory": finding.mandatory},
    }
    if key is not None:
        result["properties"]["stackKey"] = key
    if finding.outcome is Outcome.WAIVED:
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": finding.waiver_reason}
        ]
    return result


def render(report: CheckReport) -> str:
    problems = [
        (stack, finding)
        for stack in report.stacks
        for finding in stack.findings
        if finding.outcome is not Outcome.PASSED
    ]
    rules: dict[str, dict[str, Any]] = {}
    for _stack, finding in problems:
        rules.setdefault(finding.check_id, _rule(finding))
    order = {rule_id: index for index, rule_id in enumerate(rules)}
    lines = {id(stack): StackFileLines(stack.stack_file_path) for stack in report.stacks}
    run = {
        "tool": {"driver": {"name": "agentstage", "version": _version(), "rules": list(rules.values())}},
        "automationDetails": {"id": "agentstage-check/" + "+".join(s.stack for s in report.stacks) + "/"},
        "results": [_result(f, s, order[f.check_id], lines[id(s)]) for s, f in problems],
        "columnKind": "utf16CodeUnits",
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentstage")
    except PackageNotFoundError:
        return "0.0.0"
