"""One self-contained HTML page per stack: the architecture, the policy verdict, the cost and the tree.

The page opens offline and runs nothing: the diagram is SVG drawn by Graphviz when the report is built
(from the same graph-derived edges as ``plan --format mermaid``), styles are inline, and a Content
Security Policy forbids every script and every fetch, so the file shows the same thing wherever it is
opened - an air-gapped laptop, an artifact store, a mail attachment. Graphviz over an embedded Mermaid
bundle: a static SVG is ~30 KB instead of ~3 MB of JavaScript, prints, and needs no script to be trusted.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from agentstage.diagram import dot_source
from agentstage.render import key_settings
from core.errors import AgentstageError
from core.graph import Resource, ResourceGraph, short_type
from cost import Estimate
from cost.render import money, number, unit_price
from policies.findings import Finding, Outcome
from policies.report.model import StackReport, verdict_text

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""Nothing loads and nothing runs: the page is its own bytes."""

DOT_TIMEOUT_SECONDS = 60
DIAGRAM_NOTE = (
    '<p class="note">Blocks are the stack\'s components; an edge is a role assignment, a gateway route, a '
    "runtime setting naming another block, a private endpoint, or a workload running on a cluster.</p>"
)


class GraphvizUnavailableError(AgentstageError):
    """``dot`` is not installed or failed: the report needs it to draw the architecture."""


@dataclass(frozen=True)
class ReportInput:
    """Everything the page shows, computed by the caller: the plan, its verdict and its cost."""

    graph: ResourceGraph
    verdict: StackReport
    cost: Estimate
    title: str


def render_svg(dot: str) -> str:
    """The diagram as inline SVG (``dot -Tsvg``), without the XML prolog a page cannot contain."""
    binary = shutil.which("dot")
    if binary is None:
        raise GraphvizUnavailableError(
            "agentstage report draws the architecture with Graphviz: install it (apt-get install graphviz, "
            "brew install graphviz) and run again"
        )
    try:
        drawn = subprocess.run(
            [binary, "-Tsvg"],
            input=dot,
            capture_output=True,
            text=True,
            timeout=DOT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphvizUnavailableError(
            f"Graphviz did not finish the diagram in {DOT_TIMEOUT_SECONDS} s"
        ) from None
    if drawn.returncode != 0:
        raise GraphvizUnavailableError(f"Graphviz could not draw the diagram: {drawn.stderr.strip()}")
    return drawn.stdout[drawn.stdout.index("<svg") :]


def html_page(data: ReportInput) -> str:
    """The whole page: header and verdict, diagram, cost, findings, component tree."""
    body = "\n".join(
        [
            *_header(data),
            '<section id="architecture"><h2>Architecture</h2>',
            f'<div class="diagram">{render_svg(dot_source(data.graph))}</div>',
            DIAGRAM_NOTE,
            "</section>",
            *_cost(data.cost),
            *_findings(data.verdict),
            *_tree(data.graph),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{html.escape(data.title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _header(data: ReportInput) -> Iterator[str]:
    verdict = data.verdict
    state = "pass" if verdict.ok else "fail"
    yield f"<header><h1>{html.escape(data.title)}</h1>"
    yield (
        f'<p class="facts">{len(data.graph.cloud_resources())} resources · stage {verdict.context.stage.label} · '
        f"{money(data.cost.fixed)} {data.cost.currency}/month fixed</p>"
    )
    yield f'<p id="verdict" class="verdict {state}">Policy: {html.escape(verdict_text(verdict))}</p></header>'


def _cost(estimate: Estimate) -> Iterator[str]:
    yield '<section id="cost"><h2>Cost</h2>'
    yield (
        f"<p>Fixed (idle): <strong>{money(estimate.fixed)} {estimate.currency}/month</strong>"
        + (
            f" · usage ({html.escape(estimate.usage_profile)}): <strong>{money(estimate.usage)}</strong>"
            if estimate.usage_profile
            else " · usage: not estimated (agentstage report --usage FILE)"
        )
        + ". List prices, pay-as-you-go, before free grants.</p>"
    )
    yield "<table><thead><tr><th>resource</th><th>kind</th><th>meter</th><th>quantity</th>"
    yield "<th>unit price</th><th>/ month</th><th>basis</th></tr></thead><tbody>"
    for line in estimate.lines:
        if line.kind == "usage" and not line.quantity:
            continue
        cells = (
            line.resource,
            line.kind,
            line.price.description,
            f"{number(line.quantity)} {line.price.unit}",
            unit_price(line.price.price),
            money(line.monthly),
            line.basis,
        )
        yield "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
    yield "</tbody></table>"
    if estimate.unpriced:
        yield '<h3 class="fail">Not priced (not counted: the bill is higher)</h3><ul>'
        yield from (f"<li>{html.escape(u.resource)}: {html.escape(u.reason)}</li>" for u in estimate.unpriced)
        yield "</ul>"
    yield f"<details><summary>{len(estimate.free)} resources cost nothing of their own</summary><ul>"
    yield from (
        f"<li>{html.escape(f.resource)} ({html.escape(short_type(f.type))}): {html.escape(f.reason)}</li>"
        for f in estimate.free
    )
    yield "</ul></details>"
    yield from (f'<p class="note">{html.escape(note)}</p>' for note in estimate.notes)
    yield "</section>"


_OUTCOME_ORDER = {"blocking": 0, "waived": 1, "advisory": 2}


def _findings(report: StackReport) -> Iterator[str]:
    """Every finding that is not a plain pass, worst first; the passes folded below."""
    shown = sorted(
        (finding for finding in report.findings if finding.outcome is not Outcome.PASSED),
        key=lambda f: (_OUTCOME_ORDER[_label(f)], f.check_id, f.resource_name),
    )
    yield '<section id="policy"><h2>Policy</h2>'
    yield f"<p>{html.escape(verdict_text(report))}. Rules and waivers: {html.escape(str(report.artifact))}.</p>"
    if shown:
        yield "<table><thead><tr><th>outcome</th><th>check</th><th>severity</th><th>resource</th>"
        yield "<th>finding</th></tr></thead><tbody>"
        for finding in shown:
            label = _label(finding)
            detail = finding.waiver_reason if label == "waived" else finding.message
            yield (
                f'<tr class="{label}"><td>{label}</td><td>{html.escape(finding.check_id)}</td>'
                f"<td>{html.escape(finding.severity.value)}</td><td>{html.escape(finding.resource_name)}</td>"
                f"<td><strong>{html.escape(finding.title)}</strong><br>{html.escape(detail)}</td></tr>"
            )
        yield "</tbody></table>"
    passed = report.passed
    yield f"<details><summary>{len(passed)} checks passed</summary><ul>"
    yield from (
        f"<li>{html.escape(f.check_id)} {html.escape(f.resource_name)}: {html.escape(f.message)}</li>"
        for f in passed
    )
    yield "</ul></details></section>"


def _label(finding: Finding) -> str:
    if finding.outcome is Outcome.WAIVED:
        return "waived"
    return "blocking" if finding.blocks else "advisory"


def _tree(graph: ResourceGraph) -> Iterator[str]:
    roots = [r for r in graph.resources if r.parent is None and not r.type.startswith("pulumi:providers:")]
    yield '<section id="tree"><h2>Components</h2><ul class="tree">'
    for root in roots:
        yield from _node(graph, root)
    yield "</ul></section>"


def _node(graph: ResourceGraph, resource: Resource) -> Iterator[str]:
    chips = "".join(
        f'<span class="chip">{html.escape(str(key))}={html.escape(str(value))}</span>'
        for key, value in key_settings(resource).items()
    )
    label = f'<span class="name">{html.escape(resource.name)}</span> <span class="type">{html.escape(short_type(resource.type))}</span> {chips}'
    children = graph.children(resource.urn)
    if not children:
        yield f"<li>{label}</li>"
        return
    yield f'<li><details open><summary>{label}</summary><ul class="tree">'
    for child in children:
        yield from _node(graph, child)
    yield "</ul></details></li>"


def file_name(stack: str) -> str:
    """A safe default file name for a stack's report."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stack) + "-report.html"


STYLE = """
body{font:14px/1.45 "DejaVu Sans",system-ui,sans-serif;color:#1d2733;margin:0 auto;max-width:1400px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #d6dde6;padding-bottom:4px;margin-top:32px}
.facts{color:#55606e;margin:0 0 12px}.note{color:#55606e;font-size:12px}
.verdict{display:inline-block;padding:6px 12px;border-radius:6px;font-weight:bold}
.verdict.pass{background:#e3f4e6;color:#1c6b2c}.verdict.fail{background:#fbe4e4;color:#9b1c1c}
.diagram{overflow-x:auto;border:1px solid #d6dde6;border-radius:8px;padding:8px;background:#fbfcfe}
.diagram svg{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #e5e9ef;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f6fa}tr.blocking td:first-child{color:#9b1c1c;font-weight:bold}tr.waived td:first-child{color:#8a5a00}
tr.advisory td:first-child{color:#55606e}h3.fail{color:#9b1c1c}
ul.tree{list-style:none;padding-left:18px}ul.tree li{margin:2px 0}.name{font-weight:bold}.type{color:#55606e}
.chip{display:inline-block;background:#eef3fb;border-radius:4px;padding:0 6px;margin:0 2px;font-size:12px;color:#2b4a7a}
summary{cursor:pointer}
"""
