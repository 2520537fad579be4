"""Access control for tool calls, enforced in code whatever the model asks for."""

from __future__ import annotations

from collections.abc import Collection

from agent_runtime.caller import Caller
from agent_runtime.errors import ToolDenied
from agent_runtime.tools.base import Tool
from agent_runtime.tools.registry import ToolRegistry


def authorize(name: str, *, agent_tools: Collection[str], caller: Caller, registry: ToolRegistry) -> Tool:
    """The tool, if both the agent's definition and the caller's roles allow it; else :class:`ToolDenied`."""
    tool = registry.get(name)
    if tool is None or name not in agent_tools:
        raise ToolDenied(f"this agent may not call tool '{name}'")
    if not tool.permits(caller):
        raise ToolDenied(f"the caller's roles do not permit tool '{name}'")
    return tool
