"""``AGENTSTAGE_AGENT_QUEUES`` checked at startup, so a typo fails the deployment, not a delegation.

An agent named there is served by the workers of that queue (another Function App, a Kubernetes
deployment); any other agent is served by this runtime's own worker, on the local task queue
(:func:`agent_runtime.tasks.service.queue_for` resolves it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from agent_runtime.errors import ConfigurationError


def check_agent_queues(raw: str, known_agents: Iterable[str]) -> None:
    """:class:`ConfigurationError` naming the entry unless ``raw`` is a JSON object mapping configured
    agent names to non-empty queue names."""
    try:
        routes = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"AGENTSTAGE_AGENT_QUEUES is not valid JSON: {error}") from error
    if not isinstance(routes, dict):
        raise ConfigurationError("AGENTSTAGE_AGENT_QUEUES must be a JSON object of agent name -> queue")
    known = set(known_agents)
    for agent, queue in routes.items():
        if agent not in known:
            raise ConfigurationError(f"AGENTSTAGE_AGENT_QUEUES: '{agent}' is not a configured agent")
        if not isinstance(queue, str) or not queue:
            raise ConfigurationError(f"AGENTSTAGE_AGENT_QUEUES: '{agent}' must map to a queue name")
