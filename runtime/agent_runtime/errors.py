"""The runtime's exceptions: one root, and each one says whose fault it is and how HTTP reports it.

Caller mistakes (:class:`CallerError`, 4xx) are kept apart from model misbehaviour and upstream failures
(:class:`ModelError`, 5xx) and from limits the run hit (:class:`LimitExceeded`), so the API can tell the
caller what to fix instead of hiding everything behind a 500. ``code`` is a stable machine-readable string
clients may branch on; ``message`` is for humans and never contains secrets.
"""

from __future__ import annotations

import math
from typing import Any, Literal

ToolOutcome = Literal["ok", "denied", "invalid_arguments", "error", "timeout"]
"""How a tool call ended, as its trace step records it (:class:`agent_runtime.trace.ToolStep`). Defined
here, beside the tool errors that carry it, so that the errors need no response models: the plan reads
the runtime's errors without building the trace's."""


class AgentRuntimeError(Exception):
    """Root of every error the runtime raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    retry_after: float | None = None
    """Seconds after which the same request may succeed (sent as ``Retry-After``), when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of the JSON error body."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class ConfigurationError(AgentRuntimeError):
    """The deployment's settings or agent definitions are wrong; raised at startup, fixed by the operator."""

    code = "configuration_error"


EXIT_CONFIGURATION = 2
"""The exit status of a runtime process (the API server, the task worker) that stops on its configuration."""


class CallerError(AgentRuntimeError):
    """The request is wrong; the caller can fix it."""

    status = 400
    code = "invalid_request"


class InvalidRequest(CallerError):
    """Malformed body, wrong types or values."""


class UnprocessableRequest(InvalidRequest):
    """Well-formed JSON whose fields fail validation."""

    status = 422


class PayloadTooLarge(CallerError):
    """The request body exceeds ``max_request_bytes``."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(CallerError):
    """The body is not plain JSON: another ``Content-Type``, or a ``Content-Encoding`` (nothing decodes it)."""

    status = 415
    code = "unsupported_media_type"


class PromptTooLarge(CallerError):
    """The request's messages exceed ``max_prompt_chars``."""

    status = 413
    code = "prompt_too_large"


class PromptRejected(CallerError):
    """The input was refused by the prompt-injection guardrail."""

    code = "prompt_rejected"


class Unauthorized(CallerError):
    """No credentials, or credentials that do not verify."""

    status = 401
    code = "unauthorized"


class Forbidden(CallerError):
    """Authenticated, but not allowed to do this."""

    status = 403
    code = "forbidden"


class UnknownAgent(CallerError):
    """No agent of that name is configured."""

    status = 404
    code = "unknown_agent"


class UnknownConversation(CallerError):
    """The caller has no conversation of that id (someone else's answers the same: ids are not capabilities)."""

    status = 404
    code = "unknown_conversation"


class ToolError(AgentRuntimeError):
    """A tool call failed; the loop reports it to the model as the tool's result, never to the caller."""

    code = "tool_error"
    outcome: ToolOutcome = "error"


class ToolDenied(ToolError):
    """The agent's definition or the caller's roles do not allow the tool."""

    status = 403
    code = "tool_denied"
    outcome = "denied"


class ToolArgumentsInvalid(ToolError):
    """The model's arguments do not parse or fail the tool's argument model; the tool did not run."""

    status = 422
    code = "invalid_arguments"
    outcome = "invalid_arguments"


class ToolTimeout(ToolError):
    """The tool did not finish within ``tool_timeout_seconds``."""

    status = 504
    code = "tool_timeout"
    outcome = "timeout"


class ModelError(AgentRuntimeError):
    """The model endpoint failed or answered with something the loop cannot use.

    ``retryable`` marks transient failures (429, 5xx, timeouts, unreachable, malformed answers) that a
    retry or another deployment may fix; ``retry_after`` is the endpoint's ``Retry-After``, if it sent one.
    """

    status = 502
    code = "model_error"

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class ModelUnavailable(ModelError):
    """Every deployment the agent may use has an open circuit breaker; retry after ``retry_after``."""

    status = 503
    code = "model_unavailable"


class OutputBlocked(ModelError):
    """The model's answer carried a secret or sensitive data and ``output_leakage`` is ``block``."""

    code = "output_blocked"


class LimitExceeded(AgentRuntimeError):
    """The run stopped at one of its limits before the model produced an answer."""


class StepLimitExceeded(LimitExceeded):
    """The model kept calling tools past the agent's step limit."""

    status = 502
    code = "step_limit_exceeded"


class BudgetExceeded(LimitExceeded):
    """The run spent the agent's token budget before answering."""

    status = 429
    code = "budget_exceeded"


class QuotaExceeded(LimitExceeded):
    """A budget of the tenant, agent, caller or calling application has no room for the request in its
    current window.

    ``reason`` says which: ``exhausted`` (what finished calls spent leaves too little, until the window
    resets) or ``held`` (calls in flight hold the room; the call waited for them and gave up; retry soon).
    """

    status = 429
    code = "quota_exceeded"

    def __init__(
        self,
        *,
        budget: str,
        scope: str,
        subject: str,
        metric: str,
        limit: float,
        remaining: float,
        held: float,
        needed: float,
        reason: Literal["exhausted", "held"],
        reset: float,
    ) -> None:
        owner = f"budget '{budget}' of {scope} '{subject}'"
        if reason == "exhausted":
            message = (
                f"{owner} is spent: {_amount(remaining)} of {_amount(limit)} {metric} left in this window and "
                f"this call needs up to {_amount(needed)}; it resets in {math.ceil(reset)}s"
            )
        else:
            message = (
                f"{owner} is held by calls in flight ({_amount(held)} of {_amount(limit)} {metric}); this call "
                f"needs up to {_amount(needed)} and waited for them to settle; retry shortly"
            )
        super().__init__(message)
        self.budget = {
            "name": budget,
            "scope": scope,
            "subject": subject,
            "metric": metric,
            "reason": reason,
            "limit": limit,
            "remaining": remaining,
            "held": held,
            "needed": needed,
            "reset_seconds": math.ceil(reset),
        }
        self.retry_after = reset if reason == "exhausted" else HELD_RETRY_SECONDS

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "budget": self.budget}


HELD_RETRY_SECONDS = 1.0
"""``Retry-After`` of a call refused because calls in flight held its budget: they settle within seconds."""


def _amount(value: float) -> str:
    return f"{value:g}"


class DeadlineExceeded(LimitExceeded):
    """The run did not finish within ``deadline_seconds``."""

    status = 504
    code = "deadline_exceeded"


class TasksNotOffered(CallerError):
    """This deployment runs no task worker (the pilot stage): a task would be accepted and never run."""

    status = 501
    code = "tasks_not_offered"


class Unavailable(AgentRuntimeError):
    """A service the runtime depends on (state store, identity provider keys) cannot be reached."""

    status = 503
    code = "unavailable"
