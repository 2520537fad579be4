"""A task's result has invoke's names: ``answer`` (never ``output``), usage and steps, in the API's schema."""

from __future__ import annotations

import time

from agent_runtime.api import create_app
from agent_runtime.api.schemas import InvokeResponse
from agent_runtime.settings import Settings
from agent_runtime.tasks.model import TaskRecord, TaskState, result_answer
from agent_runtime.tasks.view import TaskResult, TaskView

STEP = {
    "kind": "model",
    "model": "gpt-4o-mini",
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    "latency_ms": 1.0,
}


def succeeded(result: dict[str, object]) -> TaskRecord:
    now = time.time()
    return TaskRecord(
        id="t1",
        agent="assistant",
        state=TaskState.SUCCEEDED,
        messages=[{"role": "user", "content": "hi"}],
        queue="agentstage-tasks",
        caller="api-key",
        result=result,
        created_at=now,
        updated_at=now,
    )


def test_the_result_is_shown_under_invokes_names() -> None:
    stored = {"answer": "hi", "conversation_id": "c1", "usage": STEP["usage"], "steps": [STEP]}
    view = TaskView.of(succeeded(stored)).model_dump(mode="json")
    assert view["result"]["answer"] == "hi" and "output" not in view["result"]
    result_names = set(TaskResult.model_fields)
    assert result_names == set(InvokeResponse.model_fields) - {"agent"}  # the agent is the task's own


def test_a_record_stored_before_the_rename_reads_the_same() -> None:
    legacy = {"output": "hi", "conversation_id": None, "usage": STEP["usage"], "steps": [STEP]}
    view = TaskView.of(succeeded(legacy))
    assert view.result is not None and view.result.answer == "hi"
    assert result_answer(legacy) == result_answer({"answer": "hi"}) == "hi"


def test_the_openapi_schema_documents_the_answer() -> None:
    schemas = create_app(Settings(agents="[]")).openapi()["components"]["schemas"]
    assert schemas["TaskResult"]["required"] == ["answer"]
    assert list(schemas["TaskResult"]["properties"]) == ["answer", "conversation_id", "usage", "steps"]
