"""SARIF 2.1.0 for GitHub code scanning: one run, rules with help, one result per problem.

Results point at the stack file (the artifact a reviewer changes, or where a waiver goes) and name
the resource by URN in ``logicalLocations``. Waived failures are results with an accepted external
suppression carrying the reason, so code scanning shows them as dismissed rather than hiding them.
``partialFingerprints`` keep results distinct even though they share the stack file's first line.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from policies.findings import Finding, Outcome, Severity
from policies.report.model import CheckReport, StackReport
from policies.rules import rule_by_id

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


def _result(finding: Finding, stack: StackReport, rule_index: int) -> dict[str, Any]:
    artifact = stack.artifact.as_posix()
    fingerprint = hashlib.sha256(f"{finding.check_id}|{finding.resource_urn}".encode()).hexdigest()
    result: dict[str, Any] = {
        "ruleId": finding.check_id,
        "ruleIndex": rule_index,
        "level": _level(finding),
        "message": {"text": f"{finding.resource_name} ({finding.resource_type}): {finding.message}"},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": artifact}, "region": {"startLine": 1}},
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
    run = {
        "tool": {"driver": {"name": "agentstage", "version": _version(), "rules": list(rules.values())}},
        "automationDetails": {"id": "agentstage-check/" + "+".join(s.stack for s in report.stacks) + "/"},
        "results": [_result(f, s, order[f.check_id]) for s, f in problems],
        "columnKind": "utf16CodeUnits",
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentstage")
    except PackageNotFoundError:
        return "0.0.0"
