"""``agentstage plan``: what a stack would deploy, evaluated offline from the real program.

With ``--diff BASE`` it shows what a change does instead: against a saved plan, or against the stack
planned at a git revision. ``--all --diff REVISION`` is the pull-request view of every stack.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from agentstage.commands import add_project_dir
from agentstage.console import Console
from agentstage.diagram import mermaid_lines
from agentstage.render import summary_lines, tree_lines
from core.delivery import IMAGE_KEY, delivery_of
from core.engine import build_graph
from core.errors import AgentstageError, ExitStatus
from core.graph import ResourceGraph
from core.stacks import available_stacks, load_stack_config, project_dir
from policies import verdict_line

if TYPE_CHECKING:
    from agentstage.plan_base import Base
    from agentstage.plan_review import DiffReport


def configure(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="stack name: stacks/Pulumi.<stack>.yaml")
    target.add_argument("--all", action="store_true", help="every stack in the project (with --diff)")
    parser.add_argument(
        "--format",
        choices=("tree", "json", "mermaid", "markdown"),
        default="tree",
        help="tree for people (default), json for machines, mermaid for the architecture diagram, "
        "markdown for a pull request (with --diff)",
    )
    parser.add_argument(
        "--diff",
        metavar="BASE",
        help="show what changes against BASE: a saved plan (--out FILE) or a git revision such as main",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="also write to this file: the Mermaid diagram with --format mermaid, else the graph as JSON",
    )
    add_project_dir(parser)


def run(args: argparse.Namespace, console: Console) -> int:
    _check_combination(args)
    project = project_dir(args.project_dir)
    if args.all:
        return _diff_all(args, project, console)
    base = None
    if args.diff is not None:
        from agentstage.plan_base import base_plan  # the diff's modules load only for a diff

        console.info(f"planning the base, {args.diff}, offline...")
        base = base_plan(args.diff, args.stack, project)
    console.info(f"planning stack {args.stack} offline (Pulumi program under mocks, preview mode)...")
    graph = build_graph(args.stack, project)
    _warn_of_placeholder_image(args.stack, project, console)
    if args.out is not None:
        _write_out(args.out, graph, mermaid=args.format == "mermaid" and base is None)
        console.info(f"{'diagram' if args.format == 'mermaid' else 'graph'} written to {args.out}")
    if base is not None:
        _print_diffs([_review(base, graph, project)], args.format, console, several=False)
        return ExitStatus.OK
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


def _warn_of_placeholder_image(stack: str, project: Path, console: Console) -> None:
    if delivery_of(stack, load_stack_config(stack, project)[0]).placeholder_image:
        console.warn(
            f"stack {stack}: {IMAGE_KEY} is the placeholder digest - fine to plan and check, refused by "
            "`agentstage check --deploy`; the pipeline deploys the digest the agent-build workflow pushed"
        )


def _write_out(path: Path, graph: ResourceGraph, *, mermaid: bool) -> None:
    """``--out``: the Mermaid diagram with ``--format mermaid``, else the graph as JSON (what --diff reads)."""
    try:
        if mermaid:
            path.write_text("\n".join(mermaid_lines(graph)) + "\n", encoding="utf-8")
        else:
            graph.write(path)
    except OSError as error:
        raise AgentstageError(f"cannot write --out {path}: {error.strerror}") from None


def _check_combination(args: argparse.Namespace) -> None:
    if args.diff is None and args.format == "markdown":
        raise AgentstageError("--format markdown is the pull-request view of a diff: add --diff BASE")
    if args.diff is not None and args.format == "mermaid":
        raise AgentstageError("--diff shows as tree, json or markdown, not mermaid: drop --format mermaid")
    if args.all and args.diff is None:
        raise AgentstageError("--all plans every stack for a diff: add --diff REVISION (or plan one --stack)")
    if args.all and args.out is not None:
        raise AgentstageError("--out saves one stack's plan: use it with --stack, not --all")


def _diff_all(args: argparse.Namespace, project: Path, console: Console) -> int:
    """Every stack of this checkout against the revision: the base's plans come from one worktree."""
    from agentstage.plan_base import at_revision

    if Path(args.diff).is_file():
        raise AgentstageError(f"--all --diff {args.diff}: a saved plan is one stack's; give a git revision")
    stacks = available_stacks(project)
    console.info(f"planning {len(stacks)} stacks at {args.diff} offline...")
    bases = at_revision(args.diff, stacks, project)
    reports = []
    for stack in stacks:
        console.info(f"planning stack {stack} offline...")
        reports.append(_review(bases[stack], build_graph(stack, project), project))
    _print_diffs(reports, args.format, console, several=True)
    return ExitStatus.OK


def _review(base: Base, graph: ResourceGraph, project: Path) -> DiffReport:
    from agentstage.plan_review import review
    from policies.rules import load_context

    return review(
        base.graph,
        graph,
        labels=(base.label, "this checkout"),
        contexts=(base.context, load_context(graph.stack, project)),
        note=base.note,
    )


def _print_diffs(reports: list[DiffReport], format_: str, console: Console, *, several: bool) -> None:
    """One stack's diff, or (``several``) the stacks a change touches and the names of the others."""
    from agentstage import diff_render

    if format_ == "json":
        console.print(diff_render.json_text(reports, several=several))
        return
    for line in diff_render.all_lines(reports, markdown=format_ == "markdown", several=several):
        console.print(line)
