"""Headless Chromium (Debian's ``chromium``) as a test sees a page: the DOM after load, what the console
said, and a screenshot.

Chromium's own logging (``--enable-logging=stderr``) writes every console message and every Content
Security Policy violation as an ``INFO:CONSOLE`` line; a page that runs nothing and loads nothing has
none, so any such line is a finding.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
TIMEOUT_SECONDS = 60
_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)$")


@dataclass(frozen=True)
class PageView:
    dom: str
    console: list[str]
    """Every console message and CSP violation, as Chromium logged it."""


def chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        raise RuntimeError(
            "the report tests need Debian's chromium: make test installs it (scripts/install-system-deps.sh)"
        )
    return binary


def _run(page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *FLAGS, *flags, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=True,
    )


def _console(stderr: str) -> list[str]:
    return [match[1] for line in stderr.splitlines() if (match := _CONSOLE.search(line))]


def view(page: Path) -> PageView:
    """The page's DOM once loaded, and what its console said while loading."""
    loaded = _run(page, "--dump-dom")
    return PageView(loaded.stdout, _console(loaded.stderr))


def screenshot(page: Path, target: Path, width: int = 1400, height: int = 2200) -> list[str]:
    """A PNG of the page's first ``height`` pixels; returns the console messages of that load."""
    taken = _run(page, f"--window-size={width},{height}", f"--screenshot={target}")
    return _console(taken.stderr)
