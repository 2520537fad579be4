"""checkov over the resource graph: offline, in its own environment, with agentstage's custom checks.

``scan(graph, waivers=..., dockerfiles=...)`` returns a :class:`ScanResult` of :class:`policies.findings.Finding`
objects (``source="checkov"``); see :mod:`policies.checkov.scanner` for how verdicts are decided.
"""

from policies.checkov.runner import CheckovError, checkov_executable
from policies.checkov.scanner import ScanMismatchError, ScanResult, scan

__all__ = ["CheckovError", "ScanMismatchError", "ScanResult", "checkov_executable", "scan"]
