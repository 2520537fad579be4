"""The built-in tools every runtime offers (an agent still uses only those its definition lists)."""

from __future__ import annotations

from agent_runtime.tools.base import Tool
from agent_runtime.tools.builtins.calculator import calculator
from agent_runtime.tools.builtins.http_get import http_get
from agent_runtime.tools.builtins.knowledge_search import knowledge_search
from agent_runtime.tools.builtins.memory_search import memory_search


def builtin_tools() -> list[Tool]:
    return [Tool.from_handler(handler) for handler in (calculator, http_get, memory_search, knowledge_search)]
