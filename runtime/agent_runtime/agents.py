"""Agent definitions and the tool-calling loop.

Agents are configuration, not code: ``AGENTSTAGE_AGENTS`` carries a JSON list of definitions, the same
shape a stack file carries::

    [{"name": "assistant", "instructions": "Be brief.", "model": "gpt-4o-mini",
      "tools": ["calculator"], "token_budget": 20000,
      "description": "Shown in GET /v1/agents", "max_steps": 6,
      "memory": {"history_window": 20, "persist": true, "recall_top_k": 0}}]

Only ``name`` is required; ``model``, ``token_budget`` and ``max_steps`` default to the settings'
``default_model``, ``default_token_budget`` and ``max_steps``. Unknown keys and unknown tools are refused
at startup with the agent and key named, so a typo fails the deployment rather than a request.

:class:`AgentRunner` runs one request: model call, tool calls, model call, ... until the model answers,
bounded by the agent's step limit, token budget and the request deadline. It returns the answer and a
trace of every step; in streaming mode the answer's text is yielded as the model writes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_runtime.caller import Caller
from agent_runtime.errors import (
    BudgetExceeded,
    ConfigurationError,
    DeadlineExceeded,
    StepLimitExceeded,
    UnknownAgent,
)
from agent_runtime.llm import LLM, Completion, TextDelta, ToolCall
from agent_runtime.memory.base import ConversationStore, Message, VectorStore
from agent_runtime.recall import recall
from agent_runtime.settings import Settings
from agent_runtime.tools import ToolContext, ToolExecutor, ToolRegistry, ToolResult
from agent_runtime.trace import ModelStep, Step, TokenUsage

T = TypeVar("T")


class MemoryPolicy(BaseModel):
    """What an agent remembers between requests that share a conversation id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    history_window: int = Field(default=20, ge=0, description="Earlier messages replayed to the model.")
    persist: bool = Field(default=True, description="Store the request's messages and the answer.")
    recall_top_k: int = Field(
        default=0, ge=0, le=20, description="Passages of long-term memory recalled into the prompt (0: none)."
    )


class Agent(BaseModel):
    """One agent definition, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    instructions: str = ""
    description: str = ""
    model: str = Field(min_length=1)
    tools: tuple[str, ...] = ()
    token_budget: int = Field(gt=0)
    max_steps: int = Field(gt=0, le=100)
    memory: MemoryPolicy = MemoryPolicy()


class AgentCatalog:
    """The configured agents, by name."""

    def __init__(self, agents: Sequence[Agent]) -> None:
        self._agents = {agent.name: agent for agent in agents}

    @classmethod
    def from_settings(cls, settings: Settings, registry: ToolRegistry) -> AgentCatalog:
        return cls(parse_agents(settings.agents, settings, registry))

    def get(self, name: str, *, request_field: str = "agent") -> Agent:
        """The agent, or :class:`UnknownAgent` naming the request field that asked for it."""
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(f"no agent named '{name}'", field=request_field) from None

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)


def parse_agents(raw: str | list[Any], settings: Settings, registry: ToolRegistry) -> list[Agent]:
    """Agent definitions from JSON text (or an already-parsed list); :class:`ConfigurationError` if wrong."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"AGENTSTAGE_AGENTS is not valid JSON: {error}") from error
    if not isinstance(raw, list):
        raise ConfigurationError("AGENTSTAGE_AGENTS must be a JSON list of agent definitions")
    agents: list[Agent] = []
    for index, entry in enumerate(raw):
        agent = _parse_agent(index, entry, settings)
        if any(known.name == agent.name for known in agents):
            raise ConfigurationError(f"agent '{agent.name}' is defined twice")
        unknown = [name for name in agent.tools if name not in registry]
        if unknown:
            known = ", ".join(sorted(tool.name for tool in registry))
            raise ConfigurationError(
                f"agent '{agent.name}': unknown tool '{unknown[0]}' (registered: {known})"
            )
        agents.append(agent)
    return agents


def _parse_agent(index: int, entry: Any, settings: Settings) -> Agent:
    label = (
        f"'{entry['name']}'"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
        else f"#{index}"
    )
    if not isinstance(entry, dict):
        raise ConfigurationError(f"agent {label} must be a JSON object")
    defaults = {
        "model": settings.default_model,
        "token_budget": settings.default_token_budget,
        "max_steps": settings.max_steps,
    }
    try:
        return Agent.model_validate(defaults | entry)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigurationError(f"agent {label}: unknown key '{key}'") from error
        raise ConfigurationError(f"agent {label}: '{key}': {first['msg']}") from error


@dataclass
class RunResult:
    """What a run produced: the answer, the conversation it belongs to, its cost and its trace."""

    agent: str
    answer: str
    conversation_id: str | None
    usage: TokenUsage
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class AgentRunner:
    """Runs agents; one per process, shared by all requests (it holds only long-lived clients)."""

    settings: Settings
    llm: LLM
    conversations: ConversationStore
    vectors: VectorStore
    tools: ToolExecutor
    http: httpx.AsyncClient

    async def run(
        self,
        agent: Agent,
        messages: Sequence[Message],
        *,
        caller: Caller,
        conversation_id: str | None = None,
    ) -> RunResult:
        """Run to the answer; raises a :class:`LimitExceeded` or :class:`ModelError` if there is none."""
        async for event in self._events(agent, messages, caller, conversation_id, streaming=False):
            if isinstance(event, RunResult):
                return event
        raise AssertionError("the agent loop ended without a result")

    def stream(
        self,
        agent: Agent,
        messages: Sequence[Message],
        *,
        caller: Caller,
        conversation_id: str | None = None,
    ) -> AsyncGenerator[TextDelta | RunResult, None]:
        """Run, yielding the model's text as it arrives and the :class:`RunResult` last."""
        return self._events(agent, messages, caller, conversation_id, streaming=True)

    async def _events(
        self,
        agent: Agent,
        messages: Sequence[Message],
        caller: Caller,
        conversation_id: str | None,
        *,
        streaming: bool,
    ) -> AsyncGenerator[TextDelta | RunResult, None]:
        deadline = asyncio.get_running_loop().time() + self.settings.deadline_seconds
        prompt = await _within(deadline, self._prompt(agent, messages, conversation_id))
        context = ToolContext(
            caller=caller,
            agent=agent.name,
            settings=self.settings,
            llm=self.llm,
            vectors=self.vectors,
            http=self.http,
        )
        specs = self.tools.registry.specs(agent.tools)
        usage = TokenUsage()
        steps: list[Step] = []
        for _ in range(agent.max_steps):
            completion: Completion | None = None
            async for event in self._call_model(agent.model, prompt, specs, deadline, streaming=streaming):
                if isinstance(event, TextDelta):
                    yield event
                else:
                    completion = event
            if completion is None:
                raise AssertionError("the model call ended without a completion")
            usage += completion.usage
            steps.append(_model_step(completion))
            if not completion.tool_calls:
                answer = completion.content or ""
                await _within(deadline, self._remember(agent, messages, answer, conversation_id))
                yield RunResult(agent.name, answer, conversation_id, usage, steps)
                return
            if usage.total_tokens >= agent.token_budget:
                raise BudgetExceeded(
                    f"agent '{agent.name}' spent {usage.total_tokens} tokens of its budget of "
                    f"{agent.token_budget} without answering"
                )
            prompt.append(completion.as_message())
            results = await _within(deadline, self._run_tools(completion.tool_calls, agent, context))
            for call, result in zip(completion.tool_calls, results, strict=True):
                steps.append(result.step)
                prompt.append({"role": "tool", "tool_call_id": call.id, "content": result.content})
        raise StepLimitExceeded(f"agent '{agent.name}' did not answer within {agent.max_steps} model calls")

    async def _call_model(
        self,
        model: str,
        prompt: Sequence[Message],
        specs: Sequence[dict[str, Any]],
        deadline: float,
        *,
        streaming: bool,
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """One model call before the deadline: text pieces when streaming, then the completion."""
        if streaming:
            async for event in _stream_within(deadline, self.llm.stream(model, prompt, specs)):
                yield event
        else:
            yield await _within(deadline, self.llm.complete(model, prompt, specs))

    async def _run_tools(
        self, calls: Sequence[ToolCall], agent: Agent, context: ToolContext
    ) -> list[ToolResult]:
        """The calls of one model turn, concurrently; results in the order of the calls."""
        return list(
            await asyncio.gather(
                *(self.tools.run(call, agent_tools=agent.tools, context=context) for call in calls)
            )
        )

    async def _prompt(
        self, agent: Agent, messages: Sequence[Message], conversation_id: str | None
    ) -> list[Message]:
        """Instructions, recalled memory, earlier turns, then the new messages."""
        prompt: list[Message] = []
        if agent.instructions:
            prompt.append({"role": "system", "content": agent.instructions})
        query = _last_user_text(messages)
        if agent.memory.recall_top_k and query:
            hits = await recall(
                query,
                namespace=agent.name,
                top_k=agent.memory.recall_top_k,
                llm=self.llm,
                vectors=self.vectors,
                settings=self.settings,
            )
            if hits:
                passages = "\n".join(f"- {hit.text}" for hit in hits)
                prompt.append({"role": "system", "content": f"Relevant long-term memory:\n{passages}"})
        if conversation_id and agent.memory.history_window:
            prompt.extend(
                await self.conversations.history(conversation_id, limit=agent.memory.history_window)
            )
        prompt.extend(messages)
        return prompt

    async def _remember(
        self, agent: Agent, messages: Sequence[Message], answer: str, conversation_id: str | None
    ) -> None:
        """Store the turn: the caller's messages and the answer, not the tool traffic between them.

        Tool messages are only valid right after the assistant message that asked for them; a history
        window could cut such a pair apart, so only self-contained messages are kept.
        """
        if conversation_id and agent.memory.persist:
            await self.conversations.append(
                conversation_id, [*messages, {"role": "assistant", "content": answer}]
            )


def _model_step(completion: Completion) -> ModelStep:
    return ModelStep(
        model=completion.model,
        finish_reason=completion.finish_reason,
        tool_calls=[call.name for call in completion.tool_calls],
        usage=completion.usage,
        latency_ms=round(completion.latency_ms, 3),
    )


def _last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            return content
    return ""


async def _within(deadline: float, awaitable: Awaitable[T]) -> T:
    """Await before the run's deadline, or raise :class:`DeadlineExceeded`."""
    try:
        async with asyncio.timeout_at(deadline):
            return await awaitable
    except TimeoutError as error:
        raise DeadlineExceeded("the agent did not finish before its deadline") from error


async def _stream_within(deadline: float, events: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """Each event of ``events`` before the deadline (the timeout never spans a ``yield`` to the consumer)."""
    try:
        while True:
            try:
                event = await _within(deadline, anext(events))
            except StopAsyncIteration:
                return
            yield event
    finally:
        await events.aclose()
