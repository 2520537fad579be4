"""Task test fixtures: a scripted model that calls the test tools, and the runtime's pieces in-process.

Helpers live in task_stack.py (a module of its own: ``from conftest import`` would clash with the other
test directories' conftest modules in one pytest run).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from task_effects import SCRIPT, TRANSFERS
from task_stack import Stack, close_stack, open_stack, task_settings

from agent_runtime.tasks.model import TaskRecord
from agent_runtime.testing import ScriptedModelServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def task_model() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture
async def stack(task_model: ScriptedModelServer, tmp_path: Path) -> AsyncIterator[Stack]:
    TRANSFERS.clear()
    opened = await open_stack(task_settings(task_model, tmp_path))
    yield opened
    await close_stack(opened)


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[TaskRecord]:
    """Every task record the test's stores load (each store validates what it reads), in order: what a
    read cost, not only what it returned."""
    records: list[TaskRecord] = []

    def counted(validate: Callable[..., TaskRecord]) -> classmethod[Any, Any, TaskRecord]:
        def count(cls: type[TaskRecord], *args: Any, **kwargs: Any) -> TaskRecord:
            record = validate(cls, *args, **kwargs)
            records.append(record)
            return record

        return classmethod(count)

    for name in ("model_validate", "model_validate_json"):
        monkeypatch.setattr(TaskRecord, name, counted(getattr(TaskRecord, name).__func__))
    return records
