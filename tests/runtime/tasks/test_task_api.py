"""The task endpoints over real HTTP: 202 + Location, idempotency, who may read, cancel and review, the
error shapes, and the approval flow end to end with a worker consuming what the API queued."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from runtime_helpers import Runtime, RuntimeFactory, audit_records
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from task_effects import AGENTS, TRANSFERS
from task_stack import (
    Stack,
    called_back,
    close_stack,
    open_stack,
    parked,
    run_worker_until,
    run_worker_until_finished,
    task_registry,
)

from agent_runtime.tasks.cas import update
from agent_runtime.testing import ScriptedModelServer, ServerThread

pytestmark = pytest.mark.anyio

KEYS = {
    "alice-key": {"caller": "alice", "roles": ["user"]},
    "bob-key": {"caller": "bob", "roles": ["user"]},
    "rita-key": {"caller": "rita", "roles": ["user", "reviewer"]},
    "acme-1-key": {"caller": "ann", "roles": ["user"], "tenant": "acme"},
    "acme-2-key": {"caller": "abe", "roles": ["user"], "tenant": "acme"},
}


@pytest.fixture
def receiver() -> Iterator[tuple[ServerThread, list[dict[str, Any]]]]:
    """A callback receiver on loopback, recording what it is POSTed."""
    received: list[dict[str, Any]] = []

    async def receive(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    with ServerThread(Starlette(routes=[Route("/hook", receive, methods=["POST"])])) as server:
        yield server, received


@pytest.fixture
def api(runtime_factory: RuntimeFactory, task_model: ScriptedModelServer, tmp_path: Any) -> Runtime:
    return runtime_factory(
        task_registry(),
        llm_endpoint=task_model.base_url,
        agents=json.dumps(AGENTS),
        api_keys=json.dumps(KEYS),
        bus_sqlite_path=str(tmp_path / "bus.db"),
        task_lease_seconds=3,
        bus_visibility_seconds=3,
        http_allowed_hosts=["127.0.0.1"],
        http_allow_loopback=True,
        retry_base_seconds=0.01,
        callback_max_retries=1,
    )


@pytest.fixture
async def worker_stack(api: Runtime) -> AsyncIterator[Stack]:
    """The worker's side, on the API's SQLite files (as ``python -m agent_runtime.worker`` would be)."""
    TRANSFERS.clear()
    stack = await open_stack(api.settings)
    yield stack
    await close_stack(stack)


def post(api: Runtime, path: str, body: Any, key: str = "alice-key", **headers: str) -> httpx.Response:
    return api.http.post(path, json=body, headers={"Authorization": f"Bearer {key}", **headers})


def get(api: Runtime, path: str, key: str = "alice-key") -> httpx.Response:
    return api.http.get(path, headers={"Authorization": f"Bearer {key}"})


def submit(api: Runtime, text: str, key: str = "alice-key", **body: Any) -> httpx.Response:
    return post(api, "/v1/agents/payer/tasks", {"input": text, **body}, key)


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


def test_submit_answers_202_with_location_and_the_queued_task(api: Runtime) -> None:
    response = submit(api, "pay r 0")
    assert response.status_code == 202
    task = response.json()
    assert response.headers["location"] == f"/v1/tasks/{task['id']}"
    assert (task["agent"], task["state"], task["attempts"]) == ("payer", "queued", 0)
    assert task["timings"]["queue_wait_seconds"] is None
    assert "messages" not in task
    assert get(api, response.headers["location"]).json() == task


def test_the_same_idempotency_key_returns_the_same_task(api: Runtime) -> None:
    first = post(api, "/v1/agents/payer/tasks", {"input": "pay r 0"}, **{"Idempotency-Key": "order-17"})
    again = post(api, "/v1/agents/payer/tasks", {"input": "pay r 0"}, **{"Idempotency-Key": "order-17"})
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    other = post(
        api, "/v1/agents/payer/tasks", {"input": "pay r 0"}, "bob-key", **{"Idempotency-Key": "order-17"}
    )
    assert other.json()["id"] != first.json()["id"]


def test_only_the_creator_its_tenant_and_reviewers_may_read_a_task(api: Runtime) -> None:
    location = submit(api, "pay r 0").headers["location"]
    assert get(api, location, "rita-key").status_code == 200
    hidden = get(api, location, "bob-key")
    assert hidden.status_code == 404
    assert error_of(hidden)["code"] == "task_not_found"
    assert get(api, "/v1/tasks/does-not-exist").status_code == 404
    malformed = get(api, "/v1/tasks/not%20an%20id")
    assert (malformed.status_code, error_of(malformed)["field"]) == (422, "path.task_id")
    shared = submit(api, "pay r 0", "acme-1-key").headers["location"]
    assert get(api, shared, "acme-2-key").status_code == 200
    assert get(api, shared, "alice-key").status_code == 404


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        ({"input": "x", "messages": [{"role": "user", "content": "x"}]}, {}, 422, None),
        ({"input": "x", "callback_url": "https://evil.example/hook"}, {}, 422, "callback_url"),
        ({"input": "x", "surprise": 1}, {}, 422, "surprise"),
        ({"input": "x"}, {"Idempotency-Key": "has space"}, 422, "Idempotency-Key"),
        ({"input": "x"}, {"Idempotency-Key": "k" * 129}, 422, "Idempotency-Key"),
    ],
)
def test_bad_submissions_get_a_4xx_naming_the_field(
    api: Runtime, body: dict[str, Any], headers: dict[str, str], status: int, field: str | None
) -> None:
    response = post(api, "/v1/agents/payer/tasks", body, **headers)
    assert response.status_code == status, response.text
    assert error_of(response).get("field") == field


def test_an_unknown_agent_and_a_missing_key_are_refused(api: Runtime) -> None:
    unknown = post(api, "/v1/agents/ghost/tasks", {"input": "x"})
    assert (unknown.status_code, error_of(unknown)["code"]) == (404, "unknown_agent")
    anonymous = api.http.post("/v1/agents/payer/tasks", json={"input": "x"})
    assert anonymous.status_code == 401


def test_cancel_is_for_the_creator_or_a_reviewer_and_only_once(api: Runtime) -> None:
    location = submit(api, "pay r 0").headers["location"]
    assert post(api, f"{location}/cancel", None, "bob-key").status_code == 404
    cancelled = post(api, f"{location}/cancel", None)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    again = post(api, f"{location}/cancel", None)
    assert (again.status_code, error_of(again)["code"]) == (409, "task_state_conflict")


def test_only_reviewers_decide_and_only_on_a_parked_task(api: Runtime) -> None:
    location = submit(api, "pay r 0").headers["location"]
    own = post(api, f"{location}/approval", {"decision": "approve"})
    assert (own.status_code, error_of(own)["code"]) == (403, "forbidden")
    not_parked = post(api, f"{location}/approval", {"decision": "approve"}, "rita-key")
    assert (not_parked.status_code, error_of(not_parked)["code"]) == (409, "task_state_conflict")
    bad = post(api, f"{location}/approval", {"decision": "maybe"}, "rita-key")
    assert (bad.status_code, error_of(bad)["field"]) == (422, "decision")
    assert post(api, f"{location}/approval", {"decision": "approve"}, "bob-key").status_code == 404


def test_the_synchronous_api_refuses_a_tool_that_needs_approval(api: Runtime) -> None:
    body = post(api, "/v1/agents/payer/invoke", {"input": "transfer 5"}).json()
    [tool] = [step for step in body["steps"] if step["kind"] == "tool"]
    assert tool["outcome"] == "denied"
    assert "tasks API (POST /v1/agents/payer/tasks)" in tool["error"]
    assert TRANSFERS == []


async def test_an_approved_call_runs_once_and_the_task_resumes(
    api: Runtime, worker_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.audit")
    location = submit(api, "transfer 5").headers["location"]
    task_id = location.rsplit("/", 1)[1]
    waiting = await run_worker_until(worker_stack, task_id, parked)
    assert waiting.state.value == "awaiting_approval"
    view = get(api, location).json()
    assert [task["id"] for task in get(api, "/v1/approvals", "rita-key").json()["tasks"]] == [task_id]
    refused = get(api, "/v1/approvals")
    assert (refused.status_code, error_of(refused)["code"]) == (403, "forbidden")
    assert view["approval"]["tool"] == "transfer"
    assert view["approval"]["arguments"]["amount"] == "5"  # as the model wrote it
    assert "DE89370400440532013000" not in json.dumps(view)  # the IBAN is redacted for the creator
    [reviewed] = get(api, "/v1/approvals", "rita-key").json()["tasks"]
    assert reviewed["approval"]["arguments"]["iban"] == "DE89370400440532013000"  # not for the reviewer
    assert TRANSFERS == []
    approved = post(api, f"{location}/approval", {"decision": "approve", "comment": "ok"}, "rita-key")
    assert approved.status_code == 200
    assert approved.json()["state"] == "queued"
    [done] = await run_worker_until_finished(worker_stack, [task_id])
    assert done.state.value == "succeeded"
    assert get(api, "/v1/approvals", "rita-key").json()["tasks"] == []
    assert done.result is not None and done.result["answer"] == "transferred 5"
    assert [t.split(":")[0] for t in TRANSFERS] == ["5"]
    assert done.approval is not None and (done.approval.reviewer, done.approval.comment) == ("rita", "ok")
    requested, decision = [r for r in audit_records(caplog) if r["event"].startswith("tool_approval")]
    assert requested["event"] == "tool_approval_requested"
    assert (requested["task"], requested["tool"], requested["requester"]) == (task_id, "transfer", "alice")
    assert decision | {"args_sha256": None} == {
        "event": "tool_approval",
        "task": task_id,
        "agent": "payer",
        "requester": "alice",
        "reviewer": "rita",
        "tool": "transfer",
        "call_id": view["approval"]["call_id"],
        "args_sha256": None,
        "decision": "approved",
    }


async def test_each_call_of_a_turn_is_reviewed_on_its_own(api: Runtime, worker_stack: Stack) -> None:
    location = submit(api, "transfer twice").headers["location"]
    task_id = location.rsplit("/", 1)[1]
    for _ in range(2):
        waiting = await run_worker_until(worker_stack, task_id, parked)
        assert waiting.state.value == "awaiting_approval"
        assert post(api, f"{location}/approval", {"decision": "approve"}, "rita-key").status_code == 200
    [done] = await run_worker_until_finished(worker_stack, [task_id])
    assert done.state.value == "succeeded"
    assert sorted(t.split(":")[0] for t in TRANSFERS) == ["1", "2"]


async def test_a_rejected_call_fails_the_task_and_its_callback_says_so(
    api: Runtime, worker_stack: Stack, receiver: tuple[ServerThread, list[dict[str, Any]]]
) -> None:
    server, received = receiver
    location = submit(api, "transfer 9", callback_url=f"{server.url}/hook").headers["location"]
    task_id = location.rsplit("/", 1)[1]
    await run_worker_until(worker_stack, task_id, parked)
    rejected = post(api, f"{location}/approval", {"decision": "reject", "comment": "no"}, "rita-key")
    assert rejected.json()["state"] == "failed"
    assert rejected.json()["error"]["code"] == "approval_rejected"
    await run_worker_until(worker_stack, task_id, called_back)
    assert TRANSFERS == []
    [payload] = received
    assert (payload["id"], payload["state"], payload["error"]["code"]) == (
        task_id,
        "failed",
        "approval_rejected",
    )
    assert get(api, location).json()["callback"]["status"] == "delivered"


async def test_a_decision_after_the_approval_expired_is_refused_and_the_task_has_failed(
    api: Runtime,
    worker_stack: Stack,
    receiver: tuple[ServerThread, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No sweep has expired the task yet: the late decision does (409), the system's decision is audited, a
    second try is refused the same way, and the callback says ``approval_expired``, once."""
    caplog.set_level(logging.INFO, logger="agentstage.audit")
    server, received = receiver
    location = submit(api, "transfer 9", callback_url=f"{server.url}/hook").headers["location"]
    task_id = location.rsplit("/", 1)[1]
    waiting = await run_worker_until(worker_stack, task_id, parked)
    assert waiting.approval is not None
    lapsed_at = time.time() - api.settings.approval_timeout_seconds - 5
    late = waiting.approval.model_copy(update={"requested_at": lapsed_at})
    await update(
        worker_stack.tasks.store, task_id, lambda r: r.model_copy(update={"approval": late}), now=time.time()
    )

    for decision in ("approve", "reject"):
        refused = post(api, f"{location}/approval", {"decision": decision}, "rita-key")
        assert (refused.status_code, error_of(refused)["code"]) == (409, "task_state_conflict")
        expired_at = datetime.fromtimestamp(lapsed_at + api.settings.approval_timeout_seconds, UTC)
        assert (
            f"its approval expired at {expired_at.isoformat(timespec='seconds')}"
            in error_of(refused)["message"]
        )
        assert "the task has failed" in error_of(refused)["message"]
    task = get(api, location).json()
    assert (task["state"], task["error"]["code"], task["approval"]["decision"]) == (
        "failed",
        "approval_expired",
        "expired",
    )
    await run_worker_until(worker_stack, task_id, called_back)
    assert TRANSFERS == []
    assert [(p["id"], p["state"], p["error"]["code"]) for p in received] == [
        (task_id, "failed", "approval_expired")
    ]
    [decided] = [r for r in audit_records(caplog) if r["event"] == "tool_approval"]
    assert (decided["decision"], decided["reviewer"], decided["decided_by"]) == ("expired", None, "system")


async def test_a_finished_task_is_posted_to_its_callback(
    api: Runtime, worker_stack: Stack, receiver: tuple[ServerThread, list[dict[str, Any]]]
) -> None:
    server, received = receiver
    location = submit(api, "pay cb 0", callback_url=f"{server.url}/hook").headers["location"]
    task_id = location.rsplit("/", 1)[1]
    [done] = await run_worker_until_finished(worker_stack, [task_id])
    assert done.state.value == "succeeded"
    assert [(p["id"], p["state"], p["result"]["answer"]) for p in received] == [
        (task_id, "succeeded", "paid cb")
    ]
    callback = get(api, location).json()["callback"]
    assert (callback["status"], callback["attempts"], callback["detail"]) == ("delivered", 1, "HTTP 200")


def test_a_deployment_without_a_task_worker_refuses_tasks_instead_of_queueing_them(
    runtime_factory: RuntimeFactory, task_model: ScriptedModelServer
) -> None:
    """The pilot stage runs no worker: a task would be accepted and never run, so every task endpoint says
    so (501) and points at invoke; invoke itself still answers."""
    pilot = runtime_factory(
        task_registry(),
        llm_endpoint=task_model.base_url,
        agents=json.dumps(AGENTS),
        api_keys=json.dumps(KEYS),
        tasks_enabled=False,
    )
    for response in (
        submit(pilot, "pay r 0"),
        get(pilot, "/v1/tasks/any-id"),
        post(pilot, "/v1/tasks/any-id/cancel", {}),
        get(pilot, "/v1/approvals", key="rita-key"),
    ):
        assert response.status_code == 501, response.text
        assert error_of(response)["code"] == "tasks_not_offered"
        assert "POST /v1/agents/{agent}/invoke" in error_of(response)["message"]
    assert post(pilot, "/v1/agents/payer/invoke", {"input": "pay r 0"}).status_code == 200
