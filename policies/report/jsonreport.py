"""The report for machines: every finding, the configuration used, and checkov's coverage."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from policies.findings import Finding
from policies.report.model import CheckReport, StackReport

FORMAT_VERSION = 1


def finding_dict(finding: Finding) -> dict[str, Any]:
    data = asdict(finding)
    data["severity"] = finding.severity.value
    data["outcome"] = finding.outcome.value
    data["blocks"] = finding.blocks
    return data


def stack_dict(stack: StackReport) -> dict[str, Any]:
    return {
        "stack": stack.stack,
        "verdict": "pass" if stack.ok else "fail",
        "stage": stack.context.stage.label,
        "configuration": stack.context.source,
        "counts": {
            "blocking": len(stack.blocking),
            "waived": len(stack.waived),
            "advisory": len(stack.advisory),
            "passed": len(stack.passed),
        },
        "findings": [finding_dict(f) for f in stack.findings],
        "unusedWaivers": [w.model_dump(mode="json") for w in stack.unused_waivers],
        "checkov": asdict(stack.checkov) if stack.checkov is not None else None,
    }


def render(report: CheckReport) -> str:
    payload = {
        "format": FORMAT_VERSION,
        "verdict": "pass" if report.ok else "fail",
        "stacks": [stack_dict(s) for s in report.stacks],
    }
    return json.dumps(payload, indent=2)
