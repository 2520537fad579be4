"""The command line's single output object.

Results go to stdout; diagnostics (errors, warnings, progress) go to stderr so that
``agentstage plan --format json > graph.json`` stays machine-readable. Tests inject their own streams.
"""

from __future__ import annotations

import sys
from typing import TextIO


class Console:
    """Writes results and diagnostics; colour only when the stream is a terminal."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def _colour(self, stream: TextIO, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if stream.isatty() else text

    def print(self, text: str = "") -> None:
        """A line of the command's result."""
        self.out.write(text + "\n")

    def info(self, text: str) -> None:
        """Progress or context, not part of the result."""
        self.err.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(self._colour(self.err, "33", "warning: ") + text + "\n")

    def error(self, text: str) -> None:
        """One clear line saying what is wrong and how to fix it."""
        self.err.write(self._colour(self.err, "31", "error: ") + text + "\n")
