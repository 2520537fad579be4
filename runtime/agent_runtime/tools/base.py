"""What a tool is: a name, an argument model the model sees as JSON schema, a handler, and who may call it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel

if TYPE_CHECKING:  # annotations only: the registry is also read offline (policies), without HTTP clients
    import httpx

    from agent_runtime.caller import Caller
    from agent_runtime.knowledge.factory import KnowledgeAccess
    from agent_runtime.llm import ChatModel
    from agent_runtime.memory.base import VectorStore
    from agent_runtime.settings import Settings

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may use: who asked, for which agent, and the process's shared clients."""

    caller: Caller
    agent: str
    settings: Settings
    llm: ChatModel
    vectors: VectorStore
    http: httpx.AsyncClient
    knowledge: KnowledgeAccess
    idempotency_key: str | None = None
    """Set for tools with ``side_effects`` or ``requires_approval``: a stable key for this call (the same
    when a task is re-run after a crash). Pass it to the downstream system (a payment API's
    ``Idempotency-Key``) so an action cut off mid-way is not applied twice when it runs again."""


Handler = Callable[[Any, ToolContext], Awaitable[Any]]
"""``async def handler(args: YourArgsModel, ctx: ToolContext) -> str | JSON-serialisable``."""


@dataclass(frozen=True)
class Tool:
    """A callable action; its arguments are validated against ``args`` before ``handler`` ever runs.

    ``roles`` lists the caller roles allowed to use the tool; ``None`` allows every authenticated caller.
    Whether an *agent* may use it is the agent definition's ``tools`` list; both must agree.
    ``side_effects`` marks a tool whose repetition would repeat an action (a payment, an e-mail): its
    result is stored under an idempotency key, and a replayed call returns it without running again.
    ``requires_approval`` marks a tool a human must approve call by call: inside a task the run parks
    until a reviewer decides; the synchronous APIs refuse it. Such a tool is keyed like ``side_effects``.
    """

    name: str
    description: str
    args: type[BaseModel]
    handler: Handler
    roles: frozenset[str] | None = field(default=None)
    side_effects: bool = False
    requires_approval: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"tool name '{self.name}' must be 1-64 letters, digits, '_' or '-'")

    @classmethod
    def from_handler(
        cls,
        handler: Handler,
        *,
        name: str | None = None,
        roles: Iterable[str] | None = None,
        description: str | None = None,
        side_effects: bool = False,
        requires_approval: bool = False,
    ) -> Tool:
        """A tool named after ``handler``, described by its docstring, with its first parameter's model."""
        return cls(
            name=name or handler.__name__,
            description=description or inspect.getdoc(handler) or "",
            args=_args_model(handler),
            handler=handler,
            roles=frozenset(roles) if roles is not None else None,
            side_effects=side_effects,
            requires_approval=requires_approval,
        )

    @property
    def keyed(self) -> bool:
        """Whether repeating a call could repeat an action: then it runs at most once per idempotency key."""
        return self.side_effects or self.requires_approval

    def permits(self, caller: Caller) -> bool:
        return self.roles is None or caller.has_any_role(self.roles)

    @cached_property
    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry: computed once, since schemas are sent on every model call."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.args.model_json_schema(),
            },
        }


def _args_model(handler: Handler) -> type[BaseModel]:
    """The pydantic model annotating the handler's first parameter."""
    parameters = list(inspect.signature(handler).parameters)
    try:
        hints = get_type_hints(handler)
    except NameError as error:
        raise TypeError(
            f"tool handler '{handler.__name__}': cannot resolve its annotations ({error}); "
            "define the argument model at module level"
        ) from error
    model = hints.get(parameters[0]) if parameters else None
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise TypeError(
            f"tool handler '{handler.__name__}' must take a pydantic model as its first parameter"
        )
    return model
