"""The audit trail of tool calls: one structured JSON record per call on the ``agentstage.audit`` logger.

Arguments are recorded only as a SHA-256 digest: enough to correlate and prove what was asked, without
copying user data or secrets into logs.
"""

from __future__ import annotations

import hashlib
import json
import logging

from agent_runtime.caller import Caller
from agent_runtime.trace import ToolStep

audit_log = logging.getLogger("agentstage.audit")


def digest(arguments: str) -> str:
    return hashlib.sha256(arguments.encode()).hexdigest()


def record(step: ToolStep, *, caller: Caller, agent: str) -> None:
    audit_log.info(
        json.dumps(
            {
                "event": "tool_call",
                "caller": caller.id,
                "agent": agent,
                "tool": step.tool,
                "call_id": step.call_id,
                "args_sha256": step.args_sha256,
                "outcome": step.outcome,
                "error": step.error,
                "latency_ms": step.latency_ms,
            }
        )
    )
