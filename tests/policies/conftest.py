"""Fixtures for policy tests: a project directory with a stack file, and the CLI run in-process."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rule_cases.base import STACK

from agentstage.cli import main
from agentstage.console import Console
from core.graph import ResourceGraph

STACK_CONFIG = {
    "agentstage:blueprint": "pilot",
    "agentstage:cloud": "azure",
    "agentstage:location": "swedencentral",
    "agentstage:namePrefix": "ags",
    "agentstage:environment": "test",
    "agentstage:models": [{"name": "chat", "model": "gpt-4o-mini", "version": "2024-07-18", "capacity": 10}],
    "agentstage:memory": {"embeddingDeployment": "chat"},
    "agentstage:agents": [
        {"name": "assistant", "instructions": "Help.", "model": "chat", "tokenBudget": 8000}
    ],
}


@dataclass
class Project:
    """A throwaway Pulumi project: ``Pulumi.yaml`` and ``stacks/Pulumi.test.yaml``."""

    root: Path

    def stack_file(self, waivers: list[dict[str, str]] | None = None, stack: str = STACK) -> Path:
        config = dict(STACK_CONFIG)
        if waivers is not None:
            config["agentstage:waivers"] = waivers
        path = self.root / "stacks" / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": config}), encoding="utf-8")
        return path

    def graph_file(self, graph: ResourceGraph, name: str = "graph.json") -> Path:
        path = self.root / name
        graph.write(path)
        return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: agentstage\nruntime: python\nstackConfigDir: stacks\n", encoding="utf-8"
    )
    (tmp_path / "stacks").mkdir()
    return Project(tmp_path)


@dataclass
class Run:
    status: int
    out: str
    err: str


@pytest.fixture
def agentstage() -> Callable[..., Run]:
    """``agentstage("check", "--graph", path)``: run the CLI in-process with captured streams."""

    def run(*argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        status = main(list(argv), console=Console(out, err))
        return Run(status, out.getvalue(), err.getvalue())

    return run
