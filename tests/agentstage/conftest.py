"""Fixtures of the command-line tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.stacks import PROJECT_DIR


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's program and stacks, to break (or edit) on purpose."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", copy)
    shutil.copy(PROJECT_DIR / "__main__.py", copy)
    shutil.copytree(PROJECT_DIR / "stacks", copy / "stacks")
    return copy
