"""One module per ``agentstage`` verb (see agentstage/cli.py); options several verbs share live here."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentstage.console import Console
from core.errors import AgentstageError


def add_project_dir(parser: argparse.ArgumentParser) -> None:
    """``--project-dir``: the Pulumi project the verb reads (its ``Pulumi.yaml`` and ``stacks/``)."""
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Pulumi project (default: this directory if it has one)",
    )


def add_out(parser: argparse.ArgumentParser, what: str) -> None:
    """``--out FILE``: the same output as on stdout, in the chosen ``--format``, written to FILE instead."""
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help=f"write {what} to FILE instead of stdout, in the chosen --format",
    )


def emit(text: str, out: Path | None, console: Console, *, what: str) -> None:
    """The command's result: on stdout, or with ``--out`` into the file, saying so in one line on stderr."""
    if out is None:
        console.print(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        raise AgentstageError(f"cannot write --out {out}: {error.strerror}") from None
    console.info(f"{what} written to {out}")
