"""``agentstage stacks``: every stack of the project in delivery order - what the pipeline previews and deploys.

``--format github-matrix`` prints the JSON the infrastructure workflow feeds to ``strategy.matrix``, so a
new stack file is previewed and deployed with no workflow edit. Reads the stack files only: no plan.
"""

from __future__ import annotations

import argparse
import json

from agentstage.commands import add_project_dir
from agentstage.console import Console
from core.delivery import StackDelivery, delivery_order, github_matrix
from core.errors import AgentstageError
from core.stacks import project_dir

FORMATS = ("table", "json", "github-matrix")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    add_project_dir(parser)


def run(args: argparse.Namespace, console: Console) -> int:
    project = project_dir(args.project_dir)
    stacks = delivery_order(project)
    if not stacks:
        raise AgentstageError(f"no stacks in {project}: add stacks/Pulumi.<stack>.yaml")
    if args.format == "github-matrix":
        console.print(json.dumps(github_matrix(stacks), separators=(",", ":")))
    elif args.format == "json":
        console.print(json.dumps(github_matrix(stacks)["include"], indent=2))
    else:
        for line in _table(stacks):
            console.print(line)
    return 0


def _table(stacks: list[StackDelivery]) -> list[str]:
    rows = [("stack", "cloud", "blueprint", "environment", "region", "image")]
    for s in stacks:
        image = f"{s.image_repository}@{s.image_digest or '<tag>'}" if s.image_repository else "-"
        if s.placeholder_image:
            image = f"{s.image_repository}@<placeholder digest>"
        rows.append((s.stack, s.cloud, s.blueprint, s.environment, s.region, image))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
