"""Policy-as-code for agentstage: our rules (``policies.rules``), their CrossGuard pack, checkov, reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.graph import ResourceGraph


def verdict_line(graph: ResourceGraph, project_dir: Path | None = None) -> str:
    """The one-line policy verdict ``agentstage plan`` prints (imported lazily: plan need not load rules twice)."""
    from core.stacks import PROJECT_DIR
    from policies.checking import verdict_line as line

    return line(graph, project_dir or PROJECT_DIR)
