"""JUnit XML for CI test tabs: one test suite per stack, one test case per check and resource.

Failed checks are ``<failure>`` (type ``mandatory`` or ``advisory``), waived ones ``<skipped>`` with
the waiver's reason, passed ones plain test cases.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from policies.findings import Outcome
from policies.report.model import CheckReport, StackReport


def _suite(stack: StackReport) -> ET.Element:
    failures = [f for f in stack.findings if f.outcome is Outcome.FAILED]
    suite = ET.Element(
        "testsuite",
        name=f"agentstage check {stack.stack}",
        tests=str(len(stack.findings)),
        failures=str(len(failures)),
        errors="0",
        skipped=str(len(stack.waived)),
    )
    for finding in stack.findings:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{stack.stack}.{finding.resource_name}",
            name=f"{finding.check_id} {finding.title}",
        )
        if finding.outcome is Outcome.FAILED:
            failure = ET.SubElement(
                case,
                "failure",
                message=finding.message,
                type="mandatory" if finding.mandatory else "advisory",
            )
            failure.text = f"{finding.resource_urn}\n{finding.message}\nfix: {finding.remediation}"
        elif finding.outcome is Outcome.WAIVED:
            ET.SubElement(case, "skipped", message=f"waived: {finding.waiver_reason}")
    return suite


def render(report: CheckReport) -> str:
    suites = [_suite(s) for s in report.stacks]
    root = ET.Element(
        "testsuites",
        name="agentstage check",
        tests=str(sum(int(s.get("tests", 0)) for s in suites)),
        failures=str(sum(int(s.get("failures", 0)) for s in suites)),
        errors="0",
        skipped=str(sum(int(s.get("skipped", 0)) for s in suites)),
    )
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
