"""``agentstage report``: one page per stack that opens offline, checked in a real browser.

Every stack's report is opened in headless Chromium: the console stays silent (the page runs and loads
nothing), the diagram has a node per block of the architecture, the verdict and the cost are the ones
``check`` and ``cost`` compute, and a screenshot is not blank.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from browser import screenshot, view
from PIL import Image

from agentstage import report
from agentstage.cli import main
from agentstage.console import Console
from agentstage.diagram import architecture
from agentstage.report import ReportInput, html_page
from core.graph import ResourceGraph
from core.stacks import PROJECT_DIR, available_stacks, load_stack_config
from cost import estimate
from cost.render import money
from policies.checking import check_graph
from policies.report.model import verdict_text
from policies.rules import load_context

Graphs = Callable[[str], ResourceGraph]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def page_of(stack: str, graph: ResourceGraph, target: Path) -> ReportInput:
    config, stack_file = load_stack_config(stack)
    data = ReportInput(
        graph,
        check_graph(graph, load_context(stack), checkov=False),
        estimate(graph, config, stack_file=str(stack_file)),
        title=f"agentstage · {stack}",
    )
    target.write_text(html_page(data), encoding="utf-8")
    return data


def test_the_browser_harness_hears_what_a_broken_page_says(tmp_path: Path) -> None:
    """The control: a script and a fetch the policy forbids are both reported, so silence means something."""
    page = tmp_path / "broken.html"
    page.write_text(
        f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{report.CSP}">'
        '<img src="http://example.invalid/x.png"><script>console.error("boom")</script>',
        encoding="utf-8",
    )
    said = view(page).console
    assert any("example.invalid" in line for line in said) and any(
        "inline script" in line for line in said
    ), said


@pytest.mark.parametrize("stack", available_stacks())
def test_every_stacks_report_opens_offline_with_its_diagram_verdict_and_cost(
    stack: str, stack_graph: Graphs, tmp_path: Path
) -> None:
    page = tmp_path / f"{stack}.html"
    data = page_of(stack, stack_graph(stack), page)
    seen = view(page)
    assert seen.console == [], "the page must run and load nothing"
    drawing = architecture(data.graph)
    for node_id, label in drawing.nodes:
        assert f'id="{node_id}" class="node"' in seen.dom, label
        assert f">{label}</text>" in seen.dom, label
    assert seen.dom.count('class="node"') == len(drawing.nodes)
    assert seen.dom.count('class="edge"') == len(drawing.edges)
    assert f"Policy: {verdict_text(data.verdict)}" in seen.dom
    assert f"<strong>{money(data.cost.fixed)} USD/month</strong>" in seen.dom
    assert seen.dom.count('class="waived"') == len(data.verdict.waived)


def test_a_screenshot_of_a_report_is_not_blank(stack_graph: Graphs, tmp_path: Path) -> None:
    page = tmp_path / "enterprise-prod.html"
    page_of("enterprise-prod", stack_graph("enterprise-prod"), page)
    shot = tmp_path / "shot.png"
    assert screenshot(page, shot) == []
    image = Image.open(shot).convert("L")
    histogram = image.histogram()
    ink = sum(histogram[:200]) / (image.width * image.height)
    assert image.size == (1400, 2200)
    assert 0.01 < ink < 0.6, f"{ink:.1%} of the screenshot is darker than the page background"
    assert len([level for level in histogram if level]) > 50, "text and lines, not a flat fill"


def test_the_command_writes_the_page_with_checkovs_findings_and_waivers(tmp_path: Path) -> None:
    target = tmp_path / "pilot-dev.html"
    status, out, err = run("report", "--stack", "pilot-dev", "--out", str(target))
    assert status == 0, err
    assert out.strip() == str(target) and "opens offline" in err
    text = target.read_text(encoding="utf-8")
    assert "CKV_AZURE_222" in text and "Pilot has no VNet; the Function App is public" in text
    assert text.count("<script") == 0


def test_without_graphviz_the_report_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(report.shutil, "which", lambda _name: None)
    status, out, err = run(
        "report", "--stack", "pilot-dev", "--no-checkov", "--out", str(tmp_path / "r.html")
    )
    assert (status, out) == (2, "")
    assert "install it (apt-get install graphviz, brew install graphviz)" in err
    assert not (tmp_path / "r.html").exists()


def test_plan_writes_mermaid_to_out_when_asked_for_mermaid(tmp_path: Path) -> None:
    target = tmp_path / "diagram.mmd"
    status, out, err = run("plan", "--stack", "pilot-dev", "--format", "mermaid", "--out", str(target))
    assert (status, out) == (0, "")
    assert target.read_text(encoding="utf-8").startswith("flowchart LR\n")
    assert f"diagram written to {target}" in err


def test_the_readme_shows_a_screenshot_of_a_real_report() -> None:
    assert (
        "![agentstage report of enterprise-prod](docs/report.png)" in (PROJECT_DIR / "README.md").read_text()
    )
    image = Image.open(PROJECT_DIR / "docs" / "report.png")
    assert image.size == (1400, 1500)
    histogram = image.convert("L").histogram()
    assert 0.01 < sum(histogram[:200]) / (1400 * 1500) < 0.6
