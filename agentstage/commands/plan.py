"""``agentstage plan``: what a stack would deploy, evaluated offline from the real program.

With ``--diff BASE`` it shows what a change does instead: against a saved plan, or against the stack
planned at a git revision. ``--all --diff REVISION`` is the pull-request view of every stack.
``--out FILE`` writes what stdout would show, in the chosen ``--format``, to FILE (as ``check --out``
does): a plan that ``--diff`` reads later is saved with ``--format json --out FILE``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from agentstage.commands import add_out, add_project_dir, emit
from agentstage.console import Console, Progress
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
        help="show what changes against BASE: a plan saved with --format json --out FILE, or a git "
        "revision such as main",
    )
    add_out(parser, "the plan (or the diff)")
    add_project_dir(parser)


def run(args: argparse.Namespace, console: Console) -> int:
    _check_combination(args, console)
    project = project_dir(args.project_dir)
    if args.all:
        return _diff_all(args, project, console)
    verdict, lines = "", []
    with console.progress() as progress:
        base = _base(args, project, console, progress) if args.diff is not None else None
        console.info(f"planning stack {args.stack} offline (Pulumi program under mocks, preview mode)...")
        progress.stack(args.stack)
        graph = build_graph(args.stack, project, on_resource=progress.resource)
        progress.doing("diffing and checking our rules" if base is not None else "checking our rules")
        if base is not None:
            lines = _diff_lines([_review(base, graph, project)], args.format, several=False)
        else:
            verdict = verdict_line(graph, project)
    _warn_of_placeholder_image(args.stack, project, console)
    if base is not None:
        emit("\n".join(lines), args.out, console, what="diff")
        return ExitStatus.OK
    if args.format in ("json", "mermaid"):
        text = graph.to_json() if args.format == "json" else "\n".join(mermaid_lines(graph))
        emit(text, args.out, console, what="graph" if args.format == "json" else "diagram")
        console.info(verdict)
        return ExitStatus.OK
    lines = [*tree_lines(graph), "", *summary_lines(graph), "", verdict]
    emit("\n".join(lines), args.out, console, what="plan")
    return ExitStatus.OK


def _base(args: argparse.Namespace, project: Path, console: Console, progress: Progress) -> Base:
    from agentstage.plan_base import base_plan  # the diff's modules load only for a diff

    _refuse_a_view_as_base(args.diff, args.stack)
    console.info(f"planning the base, {args.diff}, offline...")
    progress.doing(f"reading the base, {args.diff}")
    return base_plan(args.diff, args.stack, project)


def _refuse_a_view_as_base(base: str, stack: str) -> None:
    """A saved file that is not a plan (the tree or the diagram ``--out`` also writes) says so clearly."""
    path = Path(base)
    if not path.is_file():
        return  # a git revision
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            start = handle.read(256).lstrip()
    except OSError:
        return  # plan_base reports it
    if start.startswith("{"):
        return
    if start.startswith("stack "):
        what = "the file is the tree view (plan --format tree), not a saved plan"
    elif start.startswith("flowchart"):
        what = "the file is a Mermaid diagram (plan --format mermaid), not a saved plan"
    else:
        what = "the file is not a saved plan (not JSON)"
    raise AgentstageError(
        f"--diff {base}: {what}; save the base with "
        f"`agentstage plan --stack {stack} --format json --out {base}`, or give a git revision"
    )


def _warn_of_placeholder_image(stack: str, project: Path, console: Console) -> None:
    if delivery_of(stack, load_stack_config(stack, project)[0]).placeholder_image:
        console.warn(
            f"stack {stack}: {IMAGE_KEY} is the placeholder digest - fine to plan and check, refused by "
            "`agentstage check --deploy`; the pipeline deploys the digest the agent-build workflow pushed"
        )


def _check_combination(args: argparse.Namespace, console: Console) -> None:
    if args.diff is None and args.format == "markdown":
        raise AgentstageError("--format markdown is the pull-request view of a diff: add --diff BASE")
    if args.diff is not None and args.format == "mermaid":
        raise AgentstageError("--diff shows as tree, json or markdown, not mermaid: drop --format mermaid")
    if args.all and args.diff is None:
        raise AgentstageError("--all plans every stack for a diff: add --diff REVISION (or plan one --stack)")
    if args.out is not None and args.out.suffix == ".json" and args.format != "json":
        console.warn(
            f"--out {args.out}: writes the {args.format} view, which `plan --diff` cannot read; "
            "add --format json to save the plan itself"
        )


def _diff_all(args: argparse.Namespace, project: Path, console: Console) -> int:
    """Every stack of this checkout against the revision: the base's plans come from one worktree."""
    from agentstage.plan_base import at_revision

    if Path(args.diff).is_file():
        raise AgentstageError(f"--all --diff {args.diff}: a saved plan is one stack's; give a git revision")
    stacks = available_stacks(project)
    with console.progress(len(stacks)) as progress:
        console.info(f"planning {len(stacks)} stacks at {args.diff} offline...")
        progress.doing(f"planning {len(stacks)} stacks at {args.diff}")
        bases = at_revision(args.diff, stacks, project)
        reports = []
        for stack in stacks:
            console.info(f"planning stack {stack} offline...")
            progress.stack(stack)
            graph = build_graph(stack, project, on_resource=progress.resource)
            progress.doing("diffing")
            reports.append(_review(bases[stack], graph, project))
    emit("\n".join(_diff_lines(reports, args.format, several=True)), args.out, console, what="diff")
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


def _diff_lines(reports: list[DiffReport], format_: str, *, several: bool) -> list[str]:
    """One stack's diff, or (``several``) the stacks a change touches and the names of the others."""
    from agentstage import diff_render

    if format_ == "json":
        return [diff_render.json_text(reports, several=several)]
    return list(diff_render.all_lines(reports, markdown=format_ == "markdown", several=several))
