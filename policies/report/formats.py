"""The report formats of ``agentstage check --format``, by name."""

from collections.abc import Callable

from policies.report import jsonreport, junit, sarif, table
from policies.report.model import CheckReport

FORMATS: dict[str, Callable[[CheckReport], str]] = {
    "table": table.render,
    "json": jsonreport.render,
    "sarif": sarif.render,
    "junit": junit.render,
}
