"""Model selection: send a call to an agent's cheaper deployment when the full model is not needed.

Per agent (``"routing"`` in its definition)::

    "routing": {"cheap_model": "gpt-4o-mini", "max_prompt_chars": 2000,
                "task_classes": ["smalltalk", "classify"], "budget_pressure": 0.8}

A call goes to ``cheap_model`` when the prompt holds at most ``max_prompt_chars`` characters, when the
request declares one of ``task_classes`` (``metadata.task_class``), or when a budget is at least
``budget_pressure`` used (0.8: 80 % of a limit). The choice and its reason are attributes of the ``chat``
span and of the trace step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # annotations only: the stack file's routing rules are checked offline, without memory
    from agent_runtime.memory.base import Message


class RoutingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cheap_model: str = Field(min_length=1)
    max_prompt_chars: int = Field(default=0, ge=0)
    task_classes: tuple[str, ...] = ()
    budget_pressure: float | None = Field(default=None, gt=0, le=1)


@dataclass(frozen=True)
class Route:
    model: str
    reason: str


def choose(
    model: str,
    policy: RoutingPolicy | None,
    prompt: Sequence[Message],
    *,
    task_class: str | None,
    pressure: float,
) -> Route:
    """The deployment for this call and why (``"default"`` when the agent's own model stays)."""
    if policy is None:
        return Route(model, "default")
    if policy.budget_pressure is not None and pressure >= policy.budget_pressure:
        return Route(policy.cheap_model, "budget_pressure")
    if task_class is not None and task_class in policy.task_classes:
        return Route(policy.cheap_model, "task_class")
    if policy.max_prompt_chars:
        size = sum(len(content) for m in prompt if isinstance(content := m.get("content"), str))
        if size <= policy.max_prompt_chars:
            return Route(policy.cheap_model, "small_prompt")
    return Route(model, "default")
