"""Loaded by worker subprocesses through AGENTSTAGE_TOOL_MODULES: the test tools in the default registry."""

from task_effects import register

from agent_runtime.tools import default_registry

register(default_registry)
