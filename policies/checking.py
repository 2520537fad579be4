"""Check one stack: our rules, optionally checkov, the stack file's waivers - one :class:`StackReport`.

``agentstage check`` calls :func:`check_graph` per stack; ``agentstage plan`` prints
:func:`verdict_line` (rules only: checkov's few seconds belong to ``check``).
"""

from __future__ import annotations

from pathlib import Path

from agentstage.engine import PROJECT_DIR
from agentstage.errors import AgentstageError
from agentstage.graph import ResourceGraph
from policies.report.model import CheckovSummary, StackReport, verdict_text
from policies.rules import StackContext, apply_waivers, evaluate, load_context


class CheckovUnavailableError(AgentstageError):
    """The checkov integration is not installed; ``--no-checkov`` runs our rules alone."""


def check_graph(
    graph: ResourceGraph, context: StackContext, *, checkov: bool = True, graph_file: Path | None = None
) -> StackReport:
    """Evaluate ``graph`` against every rule (and checkov), then apply the stack file's waivers.

    ``graph_file`` is where a saved graph came from (reports point there when there is no stack file).
    """
    findings = evaluate(graph, context)
    summary = None
    if checkov:
        result = _checkov_scan(graph, context)
        findings += result.findings
        summary = CheckovSummary(
            exported=dict(result.exported), scanned=dict(result.scanned), unmapped=list(result.unmapped)
        )
    sources = ("agentstage", "checkov") if checkov else ("agentstage",)
    waived = apply_waivers(findings, context.waivers, sources=sources)
    return StackReport(
        stack=graph.stack,
        context=context,
        findings=waived.findings,
        unused_waivers=waived.unused,
        checkov=summary,
        graph_file=graph_file,
    )


def _checkov_scan(graph: ResourceGraph, context: StackContext):
    """checkov's findings for ``graph``; imported here because it is optional and slow to load."""
    try:
        from policies.checkov import scan
    except ImportError as error:
        raise CheckovUnavailableError(
            f"the checkov integration cannot be loaded ({error}); install it (make checkov) or pass --no-checkov"
        ) from None
    return scan(graph, waivers=context.waivers)


def verdict_line(graph: ResourceGraph, project_dir: Path = PROJECT_DIR) -> str:
    """``policy: PASS - 0 blocking failures, ...`` for ``agentstage plan`` (our rules, the stack's waivers)."""
    report = check_graph(graph, load_context(graph.stack, project_dir), checkov=False)
    line = f"policy: {verdict_text(report)} (agentstage rules; `agentstage check --stack {graph.stack}` adds checkov)"
    blocking = ", ".join(f"{f.check_id} on {f.resource_name}" for f in report.blocking[:5])
    return line + (
        f"; blocking: {blocking}" + (" ..." if len(report.blocking) > 5 else "") if blocking else ""
    )
