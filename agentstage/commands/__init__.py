"""One module per ``agentstage`` verb (see agentstage/cli.py); options several verbs share live here."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_project_dir(parser: argparse.ArgumentParser) -> None:
    """``--project-dir``: the Pulumi project the verb reads (its ``Pulumi.yaml`` and ``stacks/``)."""
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project (default: this directory if it has one)",
    )
