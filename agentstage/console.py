"""The command line's single output object.

Results go to stdout; diagnostics (errors, warnings, progress) go to stderr so that
``agentstage plan --format json > graph.json`` stays machine-readable. Tests inject their own streams.
On a terminal, long work shows one status line on stderr, rewritten in place (:meth:`Console.progress`);
piped or in CI, stderr gets none of it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_CLEAR_LINE = "\r\033[K"


class Console:
    """Writes results and diagnostics; colour and progress only when the stream is a terminal."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()
        self._status: Progress | None = None

    def _colour(self, stream: TextIO, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if stream.isatty() else text

    def print(self, text: str = "") -> None:
        """A line of the command's result."""
        with self._lock:
            if self._status is not None:
                self.err.write(_CLEAR_LINE)
                self._status._drawn = ""
            self.out.write(text + "\n")

    def info(self, text: str) -> None:
        """Progress or context, not part of the result."""
        self._diagnostic(text + "\n")

    def warn(self, text: str) -> None:
        self._diagnostic(self._colour(self.err, "33", "warning: ") + text + "\n")

    def error(self, text: str) -> None:
        """One clear line saying what is wrong and how to fix it."""
        self._diagnostic(self._colour(self.err, "31", "error: ") + text + "\n")

    def _diagnostic(self, line: str) -> None:
        """``line`` on stderr, above the status line if one is showing (it is redrawn on its next tick)."""
        with self._lock:
            if self._status is not None:
                self.err.write(_CLEAR_LINE)
                self._status._drawn = ""  # redrawn below the line on the next tick
            self.err.write(line)
            self.err.flush()

    @contextmanager
    def progress(self, stacks: int = 1) -> Iterator[Progress]:
        """A status line for work on ``stacks`` stacks: the stack (``n of m``), what is being done,
        resources registered so far and seconds elapsed. Silent unless stderr is a terminal."""
        status = Progress(self, stacks, live=_is_terminal(self.err))
        if status.live:
            self._status = status
        try:
            yield status
        finally:
            status.close()
            self._status = None

    def _show(self, line: str | None) -> None:
        """Replace the status line with ``line`` (``None`` clears it)."""
        with self._lock:
            self.err.write(_CLEAR_LINE + (line or ""))
            self.err.flush()


class Progress:
    """What the status line says, redrawn a few times a second by a background thread.

    :meth:`resource` is the plan engine's per-resource callback: it only counts, so the plan does
    not wait for the terminal; the thread draws. Every method is a no-op when not ``live``.
    """

    INTERVAL = 0.25
    """Seconds between redraws (elapsed time moves even while nothing is registered, e.g. in checkov)."""

    def __init__(self, console: Console, stacks: int, *, live: bool) -> None:
        self.live = live
        self.resources = 0
        self._console = console
        self._stacks = stacks
        self._index = 0
        self._stack = ""
        self._doing = ""
        self._drawn = ""
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if live:
            self._thread = threading.Thread(target=self._tick, name="agentstage-progress", daemon=True)
            self._thread.start()

    def stack(self, name: str, doing: str = "planning") -> None:
        """Work on the next stack begins (counted ``n of m``); its resource count starts at zero."""
        self._index += 1
        self._stack, self._doing, self.resources = name, doing, 0
        self._draw()

    def doing(self, what: str) -> None:
        """The current stack moved on to ``what`` (``running rules and checkov``); before the first
        stack, what is being done instead (``planning the base at main``)."""
        self._doing = what
        self._draw()

    def resource(self, _resource: Any = None) -> None:
        """One more resource registered (``core.engine``'s ``on_resource``)."""
        self.resources += 1

    def line(self) -> str:
        elapsed = f"{time.monotonic() - self._start:.0f} s"
        if not self._stack:  # work before the first stack (the base of a diff)
            return f"{self._doing}, {elapsed}"
        where = f"stack {self._index} of {self._stacks}: " if self._stacks > 1 else ""
        count = f"{self.resources} resource{'s' * (self.resources != 1)} registered"
        return f"{where}{self._stack}: {self._doing}, {count}, {elapsed}"

    def close(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._console._show(None)

    def _draw(self) -> None:
        if not (self.live and (self._stack or self._doing)):
            return
        line = self.line()
        if line != self._drawn:  # about once a second while only the elapsed time moves
            self._drawn = line
            self._console._show(line)

    def _tick(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self._draw()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
