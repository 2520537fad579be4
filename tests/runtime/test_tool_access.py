"""Tool access is enforced in code and audited, whatever the model asks for."""

from __future__ import annotations

import json
import logging

import pytest
from runtime_helpers import ADMIN_KEY, EXECUTED, Runtime, RuntimeFactory, audit_records

from agent_runtime.tools.audit import digest


@pytest.fixture(autouse=True)
def _capture_audit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.audit")


def test_a_tool_outside_the_agents_definition_is_refused_and_audited(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body = runtime.invoke("restricted", "report").json()
    tool_step = body["steps"][1]
    assert (tool_step["tool"], tool_step["outcome"]) == ("admin_report", "denied")
    assert tool_step["error"] == "this agent may not call tool 'admin_report'"
    # The model read the denial as the tool's result (the scripted model echoes it).
    assert json.loads(body["answer"])["error"]["code"] == "tool_denied"
    assert EXECUTED == []
    [record] = audit_records(caplog)
    assert record == {
        "event": "tool_call",
        "caller": "alice",
        "agent": "restricted",
        "tool": "admin_report",
        "call_id": "call_2_0",
        "args_sha256": digest(json.dumps({"topic": "payroll"})),
        "outcome": "denied",
        "error": "this agent may not call tool 'admin_report'",
        "latency_ms": record["latency_ms"],
    }


def test_a_tool_the_callers_role_does_not_permit_is_refused(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body = runtime.invoke("assistant", "report").json()
    assert body["steps"][1]["outcome"] == "denied"
    assert body["steps"][1]["error"] == "the caller's roles do not permit tool 'admin_report'"
    assert EXECUTED == []
    assert audit_records(caplog)[0]["caller"] == "alice"


def test_the_same_tool_runs_for_a_caller_with_the_role(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body = runtime.invoke("assistant", "report", key=ADMIN_KEY).json()
    assert body["answer"] == "report on payroll"
    assert EXECUTED == ["admin_report:payroll:bob"]
    assert audit_records(caplog)[0]["outcome"] == "ok"


def test_arguments_failing_validation_are_not_executed(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body = runtime.invoke("assistant", "bad args", key=ADMIN_KEY).json()
    step = body["steps"][1]
    assert step["outcome"] == "invalid_arguments"
    assert step["error"] == "invalid arguments: topic: Input should be a valid string"
    assert EXECUTED == []
    assert audit_records(caplog)[0]["outcome"] == "invalid_arguments"


def test_arguments_that_are_not_json_are_not_executed(runtime: Runtime) -> None:
    step = runtime.invoke("assistant", "bad json").json()["steps"][1]
    assert step["outcome"] == "invalid_arguments"
    assert step["error"].startswith("arguments are not valid JSON")


def test_a_tool_error_is_reported_to_the_model_not_the_caller(runtime: Runtime) -> None:
    response = runtime.invoke("assistant", "calc 1/0")
    assert response.status_code == 200
    step = response.json()["steps"][1]
    assert (step["outcome"], step["error"]) == ("error", "division by zero")


def test_a_slow_tool_times_out(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(tool_timeout_seconds=0.2)
    step = runtime.invoke("assistant", "nap").json()["steps"][1]
    assert (step["outcome"], step["error"]) == ("timeout", "tool 'nap' did not finish within 0.2s")
