"""What one delegate produced: an answer, or why there is none."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agent_runtime.trace import TokenUsage

DelegationStatus = Literal["succeeded", "failed", "timed_out", "awaiting_approval", "cancelled"]


@dataclass(frozen=True)
class Delegation:
    """One sub-task's outcome. ``error`` is the task's ``{"code", "message"}`` when it failed;
    ``task_id`` is ``None`` when the sub-task could not even be submitted."""

    agent: str
    task_id: str | None
    status: DelegationStatus
    answer: str | None = None
    error: dict[str, Any] | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def describe_failure(self) -> str:
        """A short, caller-safe phrase: ``timed out``, ``failed (model_error)``, ``cancelled``."""
        if self.status == "timed_out":
            return "timed out"
        if self.status == "awaiting_approval":
            return "still awaiting a reviewer's approval"
        if self.status == "failed":
            code = (self.error or {}).get("code", "error")
            return f"failed ({code})"
        return self.status

    def as_dict(self) -> dict[str, Any]:
        """The per-agent status reported with the answer (API responses, task results)."""
        report: dict[str, Any] = {
            "agent": self.agent,
            "task_id": self.task_id,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "usage": self.usage.model_dump(),
        }
        if self.error is not None:
            report["error"] = dict(self.error)
        return report
