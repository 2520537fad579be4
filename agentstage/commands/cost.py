"""``agentstage cost``: what a stack costs a month, from its offline plan and a checked-in price table.

Fixed cost is what the stack costs idle (SKUs, always-ready instances, node pools, endpoints); usage
cost comes from a usage profile (``--usage FILE``) and the stack file's model prices. ``--all`` gives
every stack's fixed cost in one table: the README's table is this command's output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentstage.commands import add_project_dir
from agentstage.console import Console
from core.engine import build_graph
from core.errors import AgentstageError, ExitStatus
from core.stacks import available_stacks, load_stack_config, project_dir
from cost import Estimate, estimate, load_usage
from cost.render import json_text, markdown_lines, summary_lines, table_lines


def configure(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="stack name: stacks/Pulumi.<stack>.yaml")
    target.add_argument("--all", action="store_true", help="every stack's fixed monthly cost in one table")
    parser.add_argument(
        "--usage",
        type=Path,
        metavar="FILE",
        help="a usage profile (requests, tokens, storage, logs); see cost/usage.example.yaml",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="table for people (default), json for machines, markdown for documents",
    )
    add_project_dir(parser)


def run(args: argparse.Namespace, console: Console) -> int:
    if args.all and args.usage is not None:
        raise AgentstageError("--usage names one stack's agents: use it with --stack, not --all")
    project = project_dir(args.project_dir)
    usage = load_usage(args.usage) if args.usage is not None else None
    stacks = available_stacks(project) if args.all else [args.stack]
    estimates = []
    with console.progress(len(stacks)) as progress:
        for stack in stacks:
            console.info(f"planning stack {stack} offline...")
            progress.stack(stack)
            config, stack_file = load_stack_config(stack, project)
            graph = build_graph(stack, project, on_resource=progress.resource)
            progress.doing("pricing")
            estimates.append(
                estimate(
                    graph,
                    config,
                    usage,
                    stack_file=str(stack_file),
                    usage_source=str(args.usage) if args.usage else None,
                )
            )
    for line in _lines(estimates, args.format, several=args.all):
        console.print(line)
    return ExitStatus.OK


def _lines(estimates: list[Estimate], format_: str, *, several: bool) -> list[str]:
    if format_ == "json":
        return [json_text(estimates)]
    if format_ == "markdown":
        return list(summary_lines(estimates) if several else markdown_lines(estimates[0]))
    lines: list[str] = []
    for index, item in enumerate(estimates):
        lines += ([""] if index else []) + list(table_lines(item))
    return lines
