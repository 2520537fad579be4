"""The orchestrator: an agent kind that routes a request to other agents over the message bus.

:class:`~agent_runtime.orchestrator.runner.OrchestratingRunner` wraps the
:class:`~agent_runtime.runner.AgentRunner`: orchestrator agents are run here, every other agent passes
through unchanged. The configuration (``"kind": "orchestrator"`` and its ``orchestration`` section) is
validated with the other agent definitions in :mod:`agent_runtime.agents`.
"""
