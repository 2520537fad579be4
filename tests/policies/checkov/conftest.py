"""Shared checkov fixtures: each shipped stack is scanned once per session (a checkov run costs seconds)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.config import StackConfig, parse_stack_config
from core.graph import ResourceGraph
from core.stacks import available_stacks, read_stack_config, stack_file
from policies.checkov import ScanResult, scan

SHIPPED_STACKS = available_stacks()
_SCANS: dict[str, ScanResult] = {}


def stack_config(stack: str) -> StackConfig:
    path = stack_file(stack)
    raw, _ = read_stack_config(path)
    return parse_stack_config(raw, path.name)


@pytest.fixture(scope="session")
def stack_scan(stack_graph: Callable[[str], ResourceGraph]) -> Callable[[str], ScanResult]:
    """``stack_scan("pilot-dev")``: checkov's verdict on the stack's graph, with the stack file's waivers."""

    def get(stack: str) -> ScanResult:
        if stack not in _SCANS:
            _SCANS[stack] = scan(stack_graph(stack), waivers=stack_config(stack).waivers)
        return _SCANS[stack]

    return get
