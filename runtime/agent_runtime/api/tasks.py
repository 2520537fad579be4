"""Task endpoints: queue an agent run (``202`` + ``Location``), read it, cancel it, review its tool calls.

- ``POST /v1/agents/{agent}/tasks``: the invoke body plus an optional ``callback_url``; an
  ``Idempotency-Key`` header makes a retry return the first task (``Idempotent-Replayed: true``).
- ``GET /v1/tasks/{task_id}``: its creator, its tenant or a reviewer; anyone else gets 404.
- ``POST /v1/tasks/{task_id}/cancel``: its creator or a reviewer.
- ``GET /v1/approvals``: the tasks waiting for a reviewer, oldest first; reviewers only.
- ``POST /v1/tasks/{task_id}/approval``: ``{"decision": "approve"|"reject", "comment", "args_sha256"}``,
  reviewers only.

The :class:`~agent_runtime.tasks.service.TaskService` is the runtime's shared one (``Services.tasks``,
opened on first use); workers consume what it queues (``python -m agent_runtime.worker``,
or beside the API in ``agentstage dev``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agent_runtime.api.deps import IDEMPOTENCY_KEY_PARAMETER, CallerDep, ServicesDep, idempotency_key
from agent_runtime.api.limits import check_prompt_size
from agent_runtime.api.schemas import InvokeRequest, ValidUnicode, error_responses
from agent_runtime.errors import TasksNotOffered
from agent_runtime.tasks.service import TaskService
from agent_runtime.tasks.view import TaskView

router = APIRouter(tags=["tasks"])

TaskId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="The id returned on creation.")]


class TaskRequest(InvokeRequest):
    """What to run, as for ``invoke``, and where to announce the outcome."""

    callback_url: Annotated[str, StringConstraints(max_length=2048), ValidUnicode] | None = Field(
        default=None,
        description="POSTed the task (as GET returns it) when it finishes; its host must be allowed "
        "(AGENTSTAGE_HTTP_ALLOWED_HOSTS, https only).",
    )


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: Annotated[str, StringConstraints(max_length=2000), ValidUnicode] | None = Field(
        default=None, description="Kept on the task."
    )
    args_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None,
        description="The parked call's args_sha256 as the reviewer saw it: the decision is refused (409) if "
        "the task waits on another call by then.",
    )


async def task_service(runtime: ServicesDep) -> TaskService:
    if not runtime.settings.tasks_enabled:
        raise TasksNotOffered(
            "this deployment runs no task worker, so it takes no tasks: invoke the agent "
            "(POST /v1/agents/{agent}/invoke), or deploy a stage with task queues (foundation or enterprise)"
        )
    return await runtime.tasks.get()


TasksDep = Annotated[TaskService, Depends(task_service)]


@router.post(
    "/v1/agents/{agent}/tasks",
    status_code=202,
    response_model=TaskView,
    responses=error_responses(400, 401, 404, 413, 422, 501, 503),
    openapi_extra=IDEMPOTENCY_KEY_PARAMETER,
)
async def submit_task(
    agent: str,
    body: TaskRequest,
    request: Request,
    response: Response,
    runtime: ServicesDep,
    caller: CallerDep,
    tasks: TasksDep,
) -> TaskView:
    """Queue a run of the agent; poll the ``Location`` (or wait for the callback) for its outcome."""
    runtime.catalog.get(agent)
    messages = body.as_messages()
    check_prompt_size(
        messages, runtime.settings.max_prompt_chars, "input" if body.input is not None else "messages"
    )
    key = idempotency_key(request)
    record, created = await tasks.submit(
        agent,
        messages,
        caller,
        conversation_id=body.conversation_id,
        task_class=body.task_class,
        callback_url=body.callback_url,
        idempotency_key=key,
        traceparent=request.headers.get("traceparent"),
    )
    response.headers["Location"] = f"/v1/tasks/{record.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return TaskView.of(record)


@router.get("/v1/tasks/{task_id}", response_model=TaskView, responses=error_responses(401, 404, 422, 501))
async def get_task(task_id: TaskId, caller: CallerDep, tasks: TasksDep) -> TaskView:
    """The task's state, timings and, once finished, its result or error."""
    return TaskView.of(await tasks.get(task_id, caller))


@router.post(
    "/v1/tasks/{task_id}/cancel",
    response_model=TaskView,
    responses=error_responses(401, 403, 404, 409, 422, 501),
)
async def cancel_task(task_id: TaskId, caller: CallerDep, tasks: TasksDep) -> TaskView:
    """Cancel: at once when queued or awaiting approval; before its next step when running."""
    return TaskView.of(await tasks.cancel(task_id, caller))


class ReviewQueue(BaseModel):
    tasks: list[TaskView] = Field(description="Tasks awaiting a decision on a tool call, oldest first.")


@router.get("/v1/approvals", response_model=ReviewQueue, responses=error_responses(401, 403, 422, 501))
async def review_queue(
    caller: CallerDep, tasks: TasksDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> ReviewQueue:
    """The reviewers' queue: what waits for ``POST /v1/tasks/{task_id}/approval`` (reviewer role only)."""
    return ReviewQueue(tasks=[TaskView.of(record) for record in await tasks.awaiting_review(caller, limit)])


@router.post(
    "/v1/tasks/{task_id}/approval",
    response_model=TaskView,
    responses=error_responses(401, 403, 404, 409, 422, 501),
)
async def decide_task(task_id: TaskId, body: ApprovalRequest, caller: CallerDep, tasks: TasksDep) -> TaskView:
    """Approve (the task resumes and runs the call once) or reject (it fails) the parked tool call."""
    decided = await tasks.decide(
        task_id,
        caller,
        approve=body.decision == "approve",
        comment=body.comment,
        args_sha256=body.args_sha256,
    )
    return TaskView.of(decided)
