"""One governed model call of the orchestrator itself (routing, synthesis), without tools.

It goes through the same :class:`~agent_runtime.gateway.ModelGateway` as an agent's calls, so budgets,
retries, breakers, fallback deployments and ``chat`` spans apply to the orchestrator's model too.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent_runtime.gateway import CallScope, ModelGateway, Routed
from agent_runtime.llm import Completion
from agent_runtime.memory.base import Message
from agent_runtime.trace import ModelStep


async def ask(
    gateway: ModelGateway, scope: CallScope, prompt: Sequence[Message], *, deadline: float
) -> tuple[Completion, ModelStep]:
    """The completion and its trace step; raises :class:`~agent_runtime.errors.ModelError` on failure."""
    routed: Routed | None = None
    async for event in gateway.call(scope, prompt, (), deadline=deadline, streaming=False):
        if isinstance(event, Routed):
            routed = event
    if routed is None:
        raise AssertionError("the model call ended without a completion")
    completion = routed.completion
    step = ModelStep(
        model=completion.model,
        finish_reason=completion.finish_reason,
        usage=completion.usage,
        latency_ms=round(completion.latency_ms, 3),
        route=routed.route_reason,
    )
    return completion, step
