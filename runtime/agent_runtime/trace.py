"""The trace of an agent run: one step per model call and per tool call, returned with the answer.

The same objects are the API's response schema, so what the caller sees is exactly what the loop recorded.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.errors import ToolOutcome


class TokenUsage(BaseModel):
    """Tokens spent by one model call or summed over a run; OpenAI's field names."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )

    @classmethod
    def of(cls, usage: Any) -> TokenUsage:
        """From the SDK's ``CompletionUsage`` (``None`` when an endpoint does not report usage)."""
        if usage is None:
            return cls()
        return cls(
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            total_tokens=usage.total_tokens or 0,
        )


class ModelStep(BaseModel):
    """One call to the model."""

    kind: Literal["model"] = "model"
    model: str
    finish_reason: str | None = None
    tool_calls: list[str] = Field(default_factory=list, description="Names of the tools the model asked for.")
    usage: TokenUsage
    latency_ms: float
    route: str = Field(
        default="default",
        description="Why this deployment answered: default, small_prompt, task_class, budget_pressure, fallback.",
    )


class ToolStep(BaseModel):
    """One tool call the model asked for, whether or not it ran."""

    kind: Literal["tool"] = "tool"
    tool: str
    call_id: str
    outcome: ToolOutcome
    args_sha256: str = Field(description="SHA-256 of the arguments as the model wrote them (never the text).")
    latency_ms: float
    error: str | None = Field(
        default=None, description="Why the call did not succeed (outcome other than ok)."
    )


Step = ModelStep | ToolStep
