"""The review of a change to a stack: its plan diff and the policy verdict on each side of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentstage.plan_diff import PlanDiff, diff_graphs
from agentstage.render import key_settings
from core.graph import ResourceGraph

if TYPE_CHECKING:
    from policies.rules import StackContext

Blocking = tuple[str, str, str]
"""(check id, resource name, message) of a mandatory failure (the waiver's reason, if it is waived)."""


@dataclass(frozen=True)
class Verdict:
    """One side's policy verdict (our rules, with that side's waivers) and its blocking failures."""

    text: str
    blocking: tuple[Blocking, ...]
    waived: tuple[Blocking, ...] = ()


@dataclass(frozen=True)
class CostChange:
    """Fixed monthly cost (what the stack costs idle) on each side, in total and per resource that moved."""

    currency: str
    base: float
    head: float
    resources: tuple[tuple[str, float, float], ...] = ()
    """(resource name, base cost, head cost) of each resource whose fixed cost changed."""

    @property
    def delta(self) -> float:
        return self.head - self.base


@dataclass(frozen=True)
class DiffReport:
    """What ``plan --diff`` shows: the diff, what each side is called, and both sides' policy verdicts."""

    diff: PlanDiff
    base_label: str
    head_label: str
    base_verdict: Verdict
    head_verdict: Verdict
    summaries: dict[str, str] = field(default_factory=dict)
    """Key settings (kind, SKU, role ...) of each added or removed resource, by URN, as one line."""
    note: str = ""
    """A caveat on the verdicts (the base checked with this checkout's waivers)."""
    cost: CostChange | None = None

    @property
    def touched(self) -> bool:
        """The change moves a resource, the policy verdict or the cost (a change to rules or prices alone does)."""
        cost_moved = self.cost is not None and round(self.cost.delta, 2) != 0
        return not self.diff.empty or self.base_verdict != self.head_verdict or cost_moved

    @property
    def new_blocking(self) -> list[Blocking]:
        """Blocking failures of the head that the base did not have: what the change breaks."""
        known = {(check, name) for check, name, _ in self.base_verdict.blocking}
        return [item for item in self.head_verdict.blocking if item[:2] not in known]

    @property
    def newly_waived(self) -> list[Blocking]:
        """Failures the change waives (with the waiver's reason): a reviewer decides whether that is right."""
        known = {(check, name) for check, name, _ in self.base_verdict.waived}
        return [item for item in self.head_verdict.waived if item[:2] not in known]

    @property
    def cleared_blocking(self) -> list[Blocking]:
        """Blocking failures of the base the change fixes (not merely waives)."""
        now = {(check, name) for check, name, _ in self.head_verdict.blocking + self.head_verdict.waived}
        return [item for item in self.base_verdict.blocking if item[:2] not in now]


def review(
    base: ResourceGraph,
    head: ResourceGraph,
    *,
    labels: tuple[str, str],
    contexts: tuple[StackContext, StackContext],
    note: str = "",
) -> DiffReport:
    """Diff ``base`` against ``head`` and check each with our rules, each under its own stack file's waivers.

    Each side keeps its own waivers (the base's stack file at its revision), so a waiver the change adds
    shows as newly waived, not as nothing.
    """
    diff = diff_graphs(base, head)
    resources = {r.urn: r for r in base.resources} | {r.urn: r for r in head.resources}
    summaries = {}
    for change in diff.of_kind("added") + diff.of_kind("removed"):
        settings = key_settings(resources[change.urn])
        if settings:
            summaries[change.urn] = ", ".join(f"{key}={value}" for key, value in settings.items())
    return DiffReport(
        diff=diff,
        base_label=labels[0],
        head_label=labels[1],
        base_verdict=verdict(base, contexts[0]),
        head_verdict=verdict(head, contexts[1]),
        summaries=summaries,
        note=note,
        cost=cost_change(base, head),
    )


def cost_change(base: ResourceGraph, head: ResourceGraph) -> CostChange:
    """Both sides priced with this checkout's price table, so the difference is the change's."""
    from cost import estimate

    before, after = estimate(base), estimate(head)
    old, new = dict(before.by_resource("fixed")), dict(after.by_resource("fixed"))
    moved = tuple(
        (name, old.get(name, 0.0), new.get(name, 0.0))
        for name in sorted(old.keys() | new.keys())
        if round(old.get(name, 0.0) - new.get(name, 0.0), 2) != 0
    )
    return CostChange(after.currency, before.fixed, after.fixed, moved)


def verdict(graph: ResourceGraph, context: StackContext) -> Verdict:
    """Our rules on ``graph`` (checkov is ``agentstage check``'s: its seconds do not belong in a diff)."""
    from policies.checking import check_graph
    from policies.report.model import verdict_text

    report = check_graph(graph, context, checkov=False)
    blocking = tuple(sorted((f.check_id, f.resource_name, f.message) for f in report.blocking))
    waived = tuple(sorted((f.check_id, f.resource_name, f.waiver_reason) for f in report.waived))
    return Verdict(verdict_text(report), blocking, waived)
