"""The orchestrator's own failures: no delegate answered; an agent asked for where it does not run."""

from __future__ import annotations

from collections.abc import Sequence

from agent_runtime.errors import AgentRuntimeError, CallerError
from agent_runtime.orchestrator.outcome import Delegation


class DelegationFailed(AgentRuntimeError):
    """Every chosen delegate failed or ran out of time, so there is nothing to answer with (502).

    The message names each delegate and what happened to it; when only some fail, the orchestrator
    answers with the rest instead of raising this.
    """

    status = 502
    code = "delegation_failed"

    def __init__(self, delegations: Sequence[Delegation]) -> None:
        details = "; ".join(f"'{d.agent}' {d.describe_failure()}" for d in delegations)
        super().__init__(f"no delegate answered: {details}")
        self.delegations = tuple(delegations)


class ServedElsewhere(CallerError):
    """The agent is routed to another deployment's queue (``AGENTSTAGE_AGENT_QUEUES``), so this runtime
    must not run it: here it would run under this deployment's identity, not its own (404)."""

    status = 404
    code = "agent_served_elsewhere"

    def __init__(self, agent: str, queue: str) -> None:
        super().__init__(
            f"agent '{agent}' runs in another deployment (queue '{queue}'): submit a task to it "
            f"(POST /v1/agents/{agent}/tasks) or ask an orchestrator that delegates to it"
        )
