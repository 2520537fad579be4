"""Shared fixtures: each stack's resource graph is built once per test session and shared."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from core.engine import build_graph
from core.graph import ResourceGraph
from core.stacks import PROJECT_DIR

_GRAPHS: dict[str, ResourceGraph] = {}


@pytest.fixture(scope="session")
def stack_graph() -> Callable[[str], ResourceGraph]:
    """``stack_graph("pilot-dev")``: the stack's graph, built offline on first use."""

    def get(stack: str) -> ResourceGraph:
        if stack not in _GRAPHS:
            _GRAPHS[stack] = build_graph(stack)
        return _GRAPHS[stack]

    return get


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's program and stacks, to break (or edit) on purpose."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", copy)
    shutil.copy(PROJECT_DIR / "__main__.py", copy)
    shutil.copytree(PROJECT_DIR / "stacks", copy / "stacks")
    return copy
