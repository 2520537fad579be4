"""Shared fixtures: each stack's resource graph is built once per test session and shared."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.engine import build_graph
from core.graph import ResourceGraph

_GRAPHS: dict[str, ResourceGraph] = {}


@pytest.fixture(scope="session")
def stack_graph() -> Callable[[str], ResourceGraph]:
    """``stack_graph("pilot-dev")``: the stack's graph, built offline on first use."""

    def get(stack: str) -> ResourceGraph:
        if stack not in _GRAPHS:
            _GRAPHS[stack] = build_graph(stack)
        return _GRAPHS[stack]

    return get
