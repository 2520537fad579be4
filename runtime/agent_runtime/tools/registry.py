"""The tool registry: where built-in and custom tools are declared and looked up by name.

Register a custom tool with the decorator (the argument model is taken from the handler's first
parameter, the description from its docstring)::

    from pydantic import BaseModel, Field
    from agent_runtime.tools import ToolContext, tool

    class WeatherArgs(BaseModel):
        city: str = Field(description="City name")

    @tool(roles={"staff"})
    async def weather(args: WeatherArgs, ctx: ToolContext) -> str:
        \"\"\"Current weather for a city.\"\"\"
        return f"sunny in {args.city}"

or explicitly with ``registry.register(Tool(name=..., description=..., args=..., handler=...))``. A deployed
runtime imports the modules listed in ``AGENTSTAGE_TOOL_MODULES`` at startup, so their decorators run.
An agent still uses a tool only if its definition lists it.

``@tool(side_effects=True)`` marks an action that must not repeat (it runs at most once per idempotency
key, see :mod:`agent_runtime.tools.executor`); ``@tool(requires_approval=True)`` one a reviewer approves
call by call (only in tasks: ``POST /v1/agents/{agent}/tasks``; the synchronous APIs refuse it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from agent_runtime.tools.base import Handler, Tool


class ToolRegistry:
    """Tools by name; a name is registered once."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.register(item)

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"a tool named '{tool.name}' is already registered")
        self._tools[tool.name] = tool
        return tool

    def tool(
        self,
        name: str | None = None,
        *,
        roles: Iterable[str] | None = None,
        description: str | None = None,
        side_effects: bool = False,
        requires_approval: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering ``async def handler(args: Model, ctx: ToolContext)`` as a tool."""

        def decorate(handler: Handler) -> Handler:
            tool = Tool.from_handler(
                handler,
                name=name,
                roles=roles,
                description=description,
                side_effects=side_effects,
                requires_approval=requires_approval,
            )
            self.register(tool)
            return handler

        return decorate

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def specs(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The OpenAI ``tools`` list offered to the model for these tool names."""
        return [self._tools[name].spec for name in names]
