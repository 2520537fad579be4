"""One answer from several delegates' answers: concatenated with attribution, or written by the model.

Failed and late delegates are named in the answer, never silently dropped, so a partial answer says
what it is missing. A synthesis that fails (model error, budget) falls back to the concatenation: the
delegates' work is already paid for and is worth more than an error.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent_runtime.agents import Agent
from agent_runtime.memory.base import Message
from agent_runtime.orchestrator.outcome import Delegation

SYNTHESIS_REQUEST_HEADER = "Answers to combine:"
"""First line of the synthesis request's user message (scripted test models match on it)."""


def concat(delegations: Sequence[Delegation]) -> str:
    """Each delegate's answer under its name, in delegation order; failures as one line each."""
    sections = []
    for delegation in delegations:
        if delegation.succeeded:
            sections.append(f"[{delegation.agent}]\n{delegation.answer}")
        else:
            sections.append(f"[{delegation.agent}] no answer: {delegation.describe_failure()}")
    return "\n\n".join(sections)


def synthesis_prompt(orchestrator: Agent, request: str, delegations: Sequence[Delegation]) -> list[Message]:
    """The messages asking the orchestrator's model to write one answer from the delegates' answers."""
    system = (
        f"{orchestrator.instructions}\n\n".lstrip()
        + "Write one answer to the user's request from the answers of the agents below. If an agent gave "
        "no answer, say what is missing rather than inventing it."
    )
    user = f"{SYNTHESIS_REQUEST_HEADER}\n{concat(delegations)}\n\nRequest:\n{request}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
