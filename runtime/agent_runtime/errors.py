"""The runtime's exceptions: one root, and each one says whose fault it is and how HTTP reports it.

Caller mistakes (:class:`CallerError`, 4xx) are kept apart from model misbehaviour and upstream failures
(:class:`ModelError`, 5xx) and from limits the run hit (:class:`LimitExceeded`), so the API can tell the
caller what to fix instead of hiding everything behind a 500. ``code`` is a stable machine-readable string
clients may branch on; ``message`` is for humans and never contains secrets.
"""

from __future__ import annotations

from agent_runtime.trace import ToolOutcome


class AgentRuntimeError(Exception):
    """Root of every error the runtime raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        """The ``error`` object of the JSON error body."""
        body = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class ConfigurationError(AgentRuntimeError):
    """The deployment's settings or agent definitions are wrong; raised at startup, fixed by the operator."""

    code = "configuration_error"


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


class PromptTooLarge(CallerError):
    """The request's messages exceed ``max_prompt_chars``."""

    status = 413
    code = "prompt_too_large"


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
    """The model endpoint failed or answered with something the loop cannot use."""

    status = 502
    code = "model_error"


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


class DeadlineExceeded(LimitExceeded):
    """The run did not finish within ``deadline_seconds``."""

    status = 504
    code = "deadline_exceeded"


class Unavailable(AgentRuntimeError):
    """A service the runtime depends on (state store, identity provider keys) cannot be reached."""

    status = 503
    code = "unavailable"
