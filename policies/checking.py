"""Check one stack: our rules, optionally checkov, the stack file's waivers - one :class:`StackReport`.

``agentstage check`` calls :func:`check_graph` per stack, with checkov started by :func:`start_checkov`
before the stack is planned; ``agentstage plan`` prints :func:`verdict_line` (rules only: checkov's few
seconds belong to ``check``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import AgentstageError
from core.graph import ResourceGraph
from core.stacks import PROJECT_DIR
from policies.report.model import CheckovSummary, StackReport, verdict_text
from policies.rules import StackContext, apply_waivers, evaluate, load_context

if TYPE_CHECKING:
    from policies.checkov.runner import WarmCheckov


class CheckovUnavailableError(AgentstageError):
    """The checkov integration is not installed; ``--no-checkov`` runs our rules alone."""


def check_graph(
    graph: ResourceGraph,
    context: StackContext,
    *,
    checkov: bool = True,
    graph_file: Path | None = None,
    warm_checkov: WarmCheckov | None = None,
) -> StackReport:
    """Evaluate ``graph`` against every rule (and checkov), then apply the stack file's waivers.

    ``graph_file`` is where a saved graph came from (reports point there when there is no stack file).
    ``warm_checkov`` is a checkov from :func:`start_checkov`; without one, checkov starts cold here.
    """
    findings = evaluate(graph, context)
    summary = None
    if checkov:
        with _loading_checkov():
            from policies.checkov import scan
        result = scan(graph, waivers=context.waivers, warm=warm_checkov)
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


def start_checkov(warn: Callable[[str], None]) -> WarmCheckov:
    """Start checkov's interpreter now, so that its seconds of imports overlap planning the stack.

    Pass the result to :func:`check_graph` as ``warm_checkov``, inside ``with``; ``warn`` hears if it did
    not start (the scan then runs checkov's command line).
    """
    with _loading_checkov():
        from policies.checkov.runner import WarmCheckov
    return WarmCheckov(warn)


@contextmanager
def _loading_checkov() -> Iterator[None]:
    """Around importing the checkov integration, which happens only when used: optional and slow to load."""
    try:
        yield
    except ImportError as error:
        raise CheckovUnavailableError(
            f"the checkov integration cannot be loaded ({error}); install it (make checkov) or pass --no-checkov"
        ) from None


def verdict_line(graph: ResourceGraph, project_dir: Path = PROJECT_DIR) -> str:
    """``policy: PASS - 0 blocking failures, ...`` for ``agentstage plan`` (our rules, the stack's waivers)."""
    report = check_graph(graph, load_context(graph.stack, project_dir), checkov=False)
    line = f"policy: {verdict_text(report)} (agentstage rules; `agentstage check --stack {graph.stack}` adds checkov)"
    blocking = ", ".join(f"{f.check_id} on {f.resource_name}" for f in report.blocking[:5])
    return line + (
        f"; blocking: {blocking}" + (" ..." if len(report.blocking) > 5 else "") if blocking else ""
    )
