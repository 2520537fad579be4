"""``agentstage check``: does a stack comply? Our rules and checkov, one report, offline.

Exit status: 0 when no stack has an unwaived mandatory failure, 1 when one has, 2 for usage errors
(unknown stack, unreadable graph file, invalid stack file).

``--deploy`` is the gate the pipeline runs right before ``pulumi up``: besides the rules it refuses what
may be planned but never deployed - an image named by tag, or the example stacks' placeholder digest.

The table shows failures, waivers and each stack's verdict (``--verbose``: every check, passes too);
``--out FILE`` writes the chosen format to FILE instead of stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from agentstage.commands import add_out, add_project_dir, emit
from agentstage.console import Console
from core.delivery import IMAGE_KEY, delivery_of
from core.engine import build_graph
from core.errors import AgentstageError, ExitStatus
from core.graph import ResourceGraph
from core.stacks import available_stacks, load_stack_config, project_dir
from policies.checking import check_graph, start_checkov
from policies.report import table
from policies.report.formats import FORMATS
from policies.report.model import CheckReport, StackReport, verdict_text
from policies.rules import load_context


def configure(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="stack name: stacks/Pulumi.<stack>.yaml")
    target.add_argument("--all", action="store_true", help="every stack in the project")
    target.add_argument(
        "--graph",
        type=Path,
        metavar="FILE",
        help="a graph saved by `agentstage plan --format json --out FILE`",
    )
    parser.add_argument(
        "--format", choices=tuple(FORMATS), default="table", help="report format (default: table)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="table: list every check on every resource, passes too"
    )
    add_out(parser, "the report")
    parser.add_argument(
        "--no-checkov", action="store_true", help="run agentstage's rules only (skip checkov)"
    )
    parser.add_argument(
        "--deploy",
        action="store_true",
        help="the stacks are about to be deployed: also refuse images by tag or by the placeholder digest",
    )
    add_project_dir(parser)


def run(args: argparse.Namespace, console: Console) -> int:
    project = project_dir(args.project_dir)
    checkov = not args.no_checkov
    doing = f"running our rules{' and checkov' if checkov else ''}"
    reports: list[StackReport] = []
    if args.graph is not None:
        if args.deploy:
            raise AgentstageError("--deploy checks stack files: use --stack or --all, not --graph")
        with _warm_checkov(checkov, console) as warm, console.progress() as progress:
            graph = _read_graph(args.graph)
            context = load_context(graph.stack, project)
            if context.stack_file is None:
                console.warn(f"{args.graph}: {context.source}")
            console.info(f"checking saved graph {args.graph} (stack {graph.stack})...")
            progress.stack(graph.stack, doing)
            progress.resources = len(graph.resources)
            reports.append(
                check_graph(graph, context, checkov=checkov, graph_file=args.graph, warm_checkov=warm)
            )
    else:
        stacks = available_stacks(project) if args.all else [args.stack]
        if not stacks:
            raise AgentstageError(f"no stacks in {project}: nothing to check")
        if args.deploy and (undeployable := _undeployable(stacks, project)):
            for problem in undeployable:
                console.error(problem)
            return ExitStatus.POLICY_FAILED
        with console.progress(len(stacks)) as progress:
            for stack in stacks:
                then = "rules and checkov" if checkov else "rules"
                console.info(f"checking stack {stack} (planning offline, then {then})...")
                progress.stack(stack)
                with _warm_checkov(checkov, console) as warm:
                    context = load_context(stack, project)  # first: a bad waiver is refused before planning
                    graph = build_graph(stack, project, on_resource=progress.resource)
                    progress.doing(doing)
                    reports.append(check_graph(graph, context, checkov=checkov, warm_checkov=warm))
    report = CheckReport([dataclasses.replace(r, project_dir=project) for r in reports])
    if args.format == "table":
        text = table.render(report, verbose=args.verbose)
    else:
        if args.verbose:
            console.warn(f"--verbose changes the table; --format {args.format} always has every finding")
        text = FORMATS[args.format](report)
    emit(text, args.out, console, what="report")
    for stack in report.stacks:
        for waiver in stack.unused_waivers:
            console.warn(
                f"stack {stack.stack}: waiver {waiver.check} for {waiver.resource} matches no finding"
            )
        if args.out is not None or args.format != "table":
            console.info(f"{stack.stack}: {verdict_text(stack)}")
    return ExitStatus.OK if report.ok else ExitStatus.POLICY_FAILED


def _undeployable(stacks: list[str], project: Path) -> list[str]:
    """Why each of ``stacks`` must not be deployed as its stack file stands (nothing when all may be)."""
    problems = []
    for stack in stacks:
        config, path = load_stack_config(stack, project)
        delivery = delivery_of(stack, config)
        fix = (
            f"deploy the digest the agent-build workflow pushed "
            f"(pulumi config set --path {IMAGE_KEY} {delivery.image_repository}@sha256:<digest> -s {stack})"
        )
        if delivery.placeholder_image:
            problems.append(f"{path}: {IMAGE_KEY} is the placeholder digest (all zeros): {fix}")
        elif delivery.image_repository and not delivery.image_digest:
            problems.append(f"{path}: {IMAGE_KEY} names a tag, and a tag can move under a deployment: {fix}")
    return problems


def _warm_checkov(enabled: bool, console: Console) -> AbstractContextManager:
    """checkov, started before the stack is planned so that its imports overlap the plan.

    One per stack: a checkov process scans once. Nothing when ``--no-checkov``.
    """
    return start_checkov(console.warn) if enabled else nullcontext()


def _read_graph(path: Path) -> ResourceGraph:
    try:
        return ResourceGraph.from_json(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AgentstageError(f"--graph {path}: cannot read it ({error.strerror})") from None
    except (ValueError, KeyError, TypeError) as error:
        detail = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        raise AgentstageError(
            f"--graph {path}: not a graph saved by `agentstage plan --format json --out` ({detail})"
        ) from None
