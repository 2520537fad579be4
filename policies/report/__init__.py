"""Reports of ``agentstage check``: one model, four formats (table, JSON, SARIF 2.1.0, JUnit XML)."""

from collections.abc import Callable

from policies.report import jsonreport, junit, sarif, table
from policies.report.model import CheckovSummary, CheckReport, StackReport, verdict_text

FORMATS: dict[str, Callable[[CheckReport], str]] = {
    "table": table.render,
    "json": jsonreport.render,
    "sarif": sarif.render,
    "junit": junit.render,
}

__all__ = ["FORMATS", "CheckReport", "CheckovSummary", "StackReport", "verdict_text"]
