"""The report of one ``agentstage check`` run: per stack, the merged findings and what was not checked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.config import WaiverConfig
from policies.findings import Finding, Outcome
from policies.rules.context import StackContext


@dataclass(frozen=True)
class CheckovSummary:
    """What checkov looked at: resources exported and scanned per framework, and what it could not read."""

    exported: dict[str, int]
    scanned: dict[str, int]
    unmapped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StackReport:
    """One stack's verdict. ``checkov`` is ``None`` when checkov was skipped (``--no-checkov``).

    ``graph_file`` is the saved graph that was checked, if the graph did not come from planning the stack.
    ``project_dir`` is the project the stack file's path is relative to (default: the working directory).
    """

    stack: str
    context: StackContext
    findings: list[Finding]
    unused_waivers: list[WaiverConfig]
    checkov: CheckovSummary | None = None
    graph_file: Path | None = None
    project_dir: Path | None = None

    @property
    def artifact(self) -> Path:
        """The file a reviewer edits to fix or waive a finding: the stack file, else the saved graph."""
        return self.context.stack_file or self.graph_file or Path(f"stacks/Pulumi.{self.stack}.yaml")

    @property
    def stack_file_path(self) -> Path | None:
        """The stack file to read (reports point at its lines), if the checked facts came from one."""
        path = self.context.stack_file
        if path is None or path.is_absolute() or self.project_dir is None:
            return path
        return self.project_dir / path

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocks]

    @property
    def waived(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome is Outcome.WAIVED]

    @property
    def advisory(self) -> list[Finding]:
        """Failures of advisory rules: reported, never blocking."""
        return [f for f in self.findings if f.outcome is Outcome.FAILED and not f.mandatory]

    @property
    def passed(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome is Outcome.PASSED]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def by_resource(self) -> Iterator[tuple[str, list[Finding]]]:
        """Findings grouped by resource URN, in the order resources first appear."""
        groups: dict[str, list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault(finding.resource_urn, []).append(finding)
        yield from groups.items()


@dataclass(frozen=True)
class CheckReport:
    """Every stack checked in one run."""

    stacks: list[StackReport]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stacks)

    @property
    def blocking(self) -> list[Finding]:
        return [f for s in self.stacks for f in s.blocking]


def verdict_text(report: StackReport) -> str:
    """``PASS - 0 blocking failures, 2 waived, 1 advisory warning, 140 passed``: one stack in one line."""
    blocking, waived, advisory = len(report.blocking), len(report.waived), len(report.advisory)
    return (
        f"{'PASS' if report.ok else 'FAIL'} - {blocking} blocking failure{'s' * (blocking != 1)}, "
        f"{waived} waived, {advisory} advisory warning{'s' * (advisory != 1)}, {len(report.passed)} passed"
    )
