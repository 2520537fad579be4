"""``agentstage plan``: what a stack would deploy, evaluated offline from the real program."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentstage.console import Console
from agentstage.diagram import mermaid_lines
from agentstage.engine import build_graph, project_dir
from agentstage.errors import AgentstageError, ExitStatus
from agentstage.render import summary_lines, tree_lines
from policies import verdict_line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument(
        "--format",
        choices=("tree", "json", "mermaid"),
        default="tree",
        help="tree for people (default), json for machines, mermaid for the architecture diagram",
    )
    parser.add_argument("--out", type=Path, help="also write the graph as JSON to this file")
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project (default: this directory if it has one)",
    )


def run(args: argparse.Namespace, console: Console) -> int:
    console.info(f"planning stack {args.stack} offline (Pulumi program under mocks, preview mode)...")
    project = project_dir(args.project_dir)
    graph = build_graph(args.stack, project)
    if args.out is not None:
        try:
            graph.write(args.out)
        except OSError as error:
            raise AgentstageError(f"cannot write --out {args.out}: {error.strerror}") from None
        console.info(f"graph written to {args.out}")
    verdict = verdict_line(graph, project)
    if args.format in ("json", "mermaid"):
        lines = [graph.to_json()] if args.format == "json" else list(mermaid_lines(graph))
        for line in lines:
            console.print(line)
        console.info(verdict)
        return ExitStatus.OK
    for line in tree_lines(graph):
        console.print(line)
    console.print()
    for line in summary_lines(graph):
        console.print(line)
    console.print()
    console.print(verdict)
    return ExitStatus.OK
