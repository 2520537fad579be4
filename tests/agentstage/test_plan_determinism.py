"""Plans are deterministic: the same commit and stack give byte-identical JSON, in any process.

A plan made in a fresh process (its own hash seed, its own asyncio scheduling) equals the one this test
session built, byte for byte: records, their dependencies and every mapping's keys come in one order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from core.graph import ResourceGraph
from core.stacks import available_stacks


@pytest.mark.parametrize("stack", available_stacks())
def test_a_stack_plans_to_the_same_bytes_in_a_fresh_process(
    stack: str, stack_graph: Callable[[str], ResourceGraph], tmp_path: Path
) -> None:
    target = tmp_path / f"{stack}.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "agentstage.cli",
            "plan",
            "--stack",
            stack,
            "--format",
            "json",
            "--out",
            str(target),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )
    assert target.read_text(encoding="utf-8") == stack_graph(stack).to_json() + "\n"
