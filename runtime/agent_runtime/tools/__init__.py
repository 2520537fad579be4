"""The tools / action layer: declare tools, control who may call them, audit every call.

``default_registry`` holds the built-ins (``calculator``, ``http_get``, ``memory_search``) and whatever
custom tools are registered with :func:`tool`; ``create_app`` uses it unless given another registry. See
:mod:`agent_runtime.tools.registry` for how to register a tool.
"""

from agent_runtime.tools.base import Tool, ToolContext
from agent_runtime.tools.builtins import builtin_tools
from agent_runtime.tools.executor import ToolExecutor, ToolResult
from agent_runtime.tools.registry import ToolRegistry

default_registry = ToolRegistry(builtin_tools())
tool = default_registry.tool
"""Decorator registering a custom tool in the default registry (see :mod:`agent_runtime.tools.registry`)."""

__all__ = ["Tool", "ToolContext", "ToolExecutor", "ToolRegistry", "ToolResult", "default_registry", "tool"]
