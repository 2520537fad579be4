"""The tools / action layer: declare tools, control who may call them, audit every call.

``default_registry`` holds the built-ins (``calculator``, ``http_get``, ``memory_search``) and whatever
custom tools are registered with :func:`tool`; ``create_app`` uses it unless given another registry. See
:mod:`agent_runtime.tools.registry` for how to register a tool. What runs the calls (access, deadlines,
audit) is :mod:`agent_runtime.tools.executor`, imported from there: reading the tools (the stack file's
checks, the policy rules) does not load the runtime's ledger, audit and trace.
"""

from agent_runtime.tools.base import Tool, ToolContext
from agent_runtime.tools.builtins import builtin_tools
from agent_runtime.tools.registry import ToolRegistry

default_registry = ToolRegistry(builtin_tools())
tool = default_registry.tool
"""Decorator registering a custom tool in the default registry (see :mod:`agent_runtime.tools.registry`)."""

__all__ = ["Tool", "ToolContext", "ToolRegistry", "default_registry", "tool"]
