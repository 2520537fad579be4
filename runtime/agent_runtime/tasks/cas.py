"""Read-modify-write of a task record with compare-and-set, retried when another writer got there first."""

from __future__ import annotations

from collections.abc import Callable

from agent_runtime.tasks.errors import TaskNotFound, TaskStateConflict
from agent_runtime.tasks.model import TaskConflict, TaskRecord, TaskStore

MAX_ATTEMPTS = 20


class Unchanged(Exception):
    """Raised by a change function to leave the record as it is; :func:`update` returns it unwritten."""


async def update(
    store: TaskStore, task_id: str, change: Callable[[TaskRecord], TaskRecord], *, now: float
) -> TaskRecord:
    """Apply ``change`` to the freshest record and write it iff nobody wrote in between; re-read and
    re-apply on a conflict. ``change`` sees each fresh read, so it decides again on the latest state (and
    may raise to refuse, or :class:`Unchanged` to skip the write). ``updated_at`` is set to ``now``."""
    for _ in range(MAX_ATTEMPTS):
        current = await store.get(task_id)
        if current is None:
            raise TaskNotFound(f"no task '{task_id}'", field="task_id")
        try:
            changed = change(current)
        except Unchanged:
            return current
        try:
            return await store.replace(
                changed.model_copy(update={"updated_at": now}), expected_version=current.version
            )
        except TaskConflict:
            continue
    raise TaskStateConflict(
        f"task '{task_id}' is being changed by others ({MAX_ATTEMPTS} writes in a row lost); retry",
        field="task_id",
    )
