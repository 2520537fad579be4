"""What the task API answers when a task cannot be found or is in the wrong state for a request."""

from __future__ import annotations

from agent_runtime.errors import CallerError


class TaskNotFound(CallerError):
    """No such task, or one the caller may not see (the two are indistinguishable on purpose)."""

    status = 404
    code = "task_not_found"


class TaskStateConflict(CallerError):
    """The task's state does not allow the request (cancelling a finished task, approving a running one)."""

    status = 409
    code = "task_state_conflict"
