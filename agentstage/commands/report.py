"""``agentstage report``: one self-contained HTML page of a stack - architecture, policy, cost, tree."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentstage.commands import add_project_dir
from agentstage.console import Console
from agentstage.report import ReportInput, file_name, html_page
from core.engine import build_graph
from core.errors import AgentstageError, ExitStatus
from core.stacks import load_stack_config, project_dir
from cost import estimate, load_usage
from policies.checking import check_graph
from policies.rules import load_context


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument(
        "--out", type=Path, default=None, help="the HTML file to write (default: <stack>-report.html)"
    )
    parser.add_argument("--usage", type=Path, metavar="FILE", help="a usage profile, to add usage cost")
    parser.add_argument(
        "--no-checkov", action="store_true", help="our rules only (checkov adds its findings, a few seconds)"
    )
    add_project_dir(parser)


def run(args: argparse.Namespace, console: Console) -> int:
    project = project_dir(args.project_dir)
    usage = load_usage(args.usage) if args.usage is not None else None
    config, stack_file = load_stack_config(args.stack, project)
    console.info(f"planning stack {args.stack} offline...")
    with console.progress() as progress:
        progress.stack(args.stack)
        graph = build_graph(args.stack, project, on_resource=progress.resource)
        progress.doing("running our rules" + ("" if args.no_checkov else " and checkov"))
        verdict = check_graph(graph, load_context(args.stack, project), checkov=not args.no_checkov)
        progress.doing("pricing and drawing the page")
        priced = estimate(
            graph,
            config,
            usage,
            stack_file=str(stack_file),
            usage_source=str(args.usage) if args.usage else None,
        )
        page = html_page(ReportInput(graph, verdict, priced, title=f"agentstage · {args.stack}"))
    out = args.out or Path(file_name(args.stack))
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as error:
        raise AgentstageError(f"cannot write --out {out}: {error.strerror}") from None
    console.info(f"report written to {out} ({len(page.encode()) // 1024} KB; opens offline)")
    console.print(str(out))
    return ExitStatus.OK
