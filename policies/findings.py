"""The result of one check on one resource, whoever ran it (our rules or checkov).

``agentstage check`` merges both sources into one report of these, so table, JSON, SARIF and JUnit
outputs are written once, from one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Outcome(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    WAIVED = "waived"  # failed, but the stack file waives it with a written reason


@dataclass(frozen=True)
class Finding:
    """One check's verdict on one resource."""

    source: str  # "agentstage" (policies/rules) or "checkov"
    check_id: str  # e.g. AGS-AZ-001 or CKV_AZURE_35
    title: str
    severity: Severity
    mandatory: bool
    outcome: Outcome
    resource_urn: str
    resource_type: str
    resource_name: str
    message: str
    remediation: str = ""
    waiver_reason: str = ""

    @property
    def blocks(self) -> bool:
        """An unwaived mandatory failure: the stack must not be deployed."""
        return self.outcome is Outcome.FAILED and self.mandatory
