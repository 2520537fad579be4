"""What callers see of a task: the API's response body and the callback's payload (one shape for both).

The run's input messages and its parked conversation are working state, never shown; timings are derived
from the record's timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field

from agent_runtime.tasks.model import PendingApproval, TaskRecord, TaskState
from agent_runtime.trace import ModelStep, TokenUsage, ToolStep

_Step = Annotated[ModelStep | ToolStep, Field(discriminator="kind")]


class TaskResult(BaseModel):
    """A succeeded task's outcome: what ``invoke`` answers, under the same names."""

    answer: str
    conversation_id: str | None = Field(
        default=None, description="Send it back to continue the conversation."
    )
    usage: TokenUsage = TokenUsage()
    steps: list[_Step] = Field(default=[], description="Every model call and tool call of the run, in order.")

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> TaskResult:
        """From a record's ``result``; one stored before ``output`` was renamed ``answer`` reads the same."""
        data = dict(stored)
        if "answer" not in data and "output" in data:
            data["answer"] = data.pop("output")
        return cls.model_validate(data)


class TaskTimings(BaseModel):
    created_at: float
    started_at: float | None = Field(description="When the first run started.")
    finished_at: float | None
    updated_at: float
    queue_wait_seconds: float | None = Field(description="From creation to the first run's start.")
    run_seconds: float | None = Field(description="From the first run's start to the end (reviews included).")


class TaskView(BaseModel):
    id: str
    agent: str
    state: TaskState
    conversation_id: str | None
    parent_id: str | None
    attempts: int = Field(description="Runs started; more than one after a worker died or a review.")
    cancel_requested: bool
    result: TaskResult | None = Field(description="On success: the answer, usage and the run's steps.")
    error: dict[str, Any] | None = Field(description="On failure: code and message.")
    approval: PendingApproval | None = Field(description="The tool call under (or after) human review.")
    callback: dict[str, Any] | None = Field(description="How delivery to callback_url went, once tried.")
    timings: TaskTimings

    @classmethod
    def of(cls, record: TaskRecord) -> TaskView:
        started, finished = record.started_at, record.finished_at
        return cls(
            id=record.id,
            agent=record.agent,
            state=record.state,
            conversation_id=record.conversation_id,
            parent_id=record.parent_id,
            attempts=record.attempts,
            cancel_requested=record.cancel_requested,
            result=TaskResult.of(record.result) if record.result is not None else None,
            error=dict(record.error) if record.error is not None else None,
            approval=record.approval,
            callback=dict(record.callback) if record.callback is not None else None,
            timings=TaskTimings(
                created_at=record.created_at,
                started_at=started,
                finished_at=finished,
                updated_at=record.updated_at,
                queue_wait_seconds=_between(record.created_at, started),
                run_seconds=_between(started, finished),
            ),
        )


def _between(start: float | None, end: float | None) -> float | None:
    return round(end - start, 6) if start is not None and end is not None else None
