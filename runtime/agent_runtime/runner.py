"""The agent loop: model call, tool calls, model call, ... until the model answers.

:class:`AgentRunner` runs one request, bounded by the agent's step limit, token budget and the request
deadline, and governed on the way: the caller's input is screened for prompt injection before the model
sees it, every model call goes through the :class:`~agent_runtime.gateway.ModelGateway` (budgets, routing,
retries, breakers, fallback deployments), tool output is screened before it reaches the model, the answer
is checked for leaked secrets, and what is stored as history is redacted. When every deployment of an
agent fails before anything was streamed, its ``fallback_agent`` answers instead. The run is one
``invoke_agent`` span; it returns the answer and a trace of every step.

Runs of a task (:mod:`agent_runtime.tasks`) differ in three ways, all set by :class:`RunOptions`: a
tool call the model asks for that ``requires_approval`` parks the run (:class:`ApprovalRequired` carries a
:class:`Checkpoint`), and a later run resumes from that checkpoint with the approved call allowed; the
idempotency key of a side-effecting call is (task, step, call index), so a re-run after a crash replays it
instead of repeating it; and a hook between steps lets the worker stop a run whose task was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx
from opentelemetry.trace import Span
from pydantic import BaseModel, ConfigDict

from agent_runtime.agents import Agent, AgentCatalog
from agent_runtime.caller import Caller
from agent_runtime.errors import (
    BudgetExceeded,
    DeadlineExceeded,
    ModelError,
    OutputBlocked,
    StepLimitExceeded,
    ToolDenied,
)
from agent_runtime.gateway import CallScope, ModelGateway, Routed
from agent_runtime.governance.guardrails import TOOL_OUTPUT_WITHHELD, Guardrails
from agent_runtime.knowledge.factory import KnowledgeAccess
from agent_runtime.llm import ChatModel, TextDelta, ToolCall
from agent_runtime.memory.base import ConversationStore, Message, VectorStore
from agent_runtime.recall import recall
from agent_runtime.settings import Settings
from agent_runtime.telemetry import Telemetry
from agent_runtime.tools import Tool, ToolContext, audit
from agent_runtime.tools.access import authorize
from agent_runtime.tools.executor import ToolExecutor, ToolResult
from agent_runtime.trace import ModelStep, Step, TokenUsage, ToolStep

T = TypeVar("T")

DEADLINE_MESSAGE = "the agent did not finish before its deadline"

ANSWERING = TextDelta("")
"""Yielded once by a streamed run whose model has begun to answer while the output guard still holds its
first words back, so an HTTP caller can start the response then (its headers and first event overlap the
held-back window) instead of after it. It carries no text."""


@dataclass
class RunResult:
    """What a run produced: the answer, the conversation it belongs to, its cost and its trace."""

    agent: str
    answer: str
    conversation_id: str | None
    usage: TokenUsage
    steps: list[Step] = field(default_factory=list)

    @property
    def finish_reason(self) -> str:
        """Why the answer ended, as its model call reported it in OpenAI's words: ``stop``, or ``length``
        when the model reached its output cap and the answer is cut short (``stop`` when not reported)."""
        last = next((step for step in reversed(self.steps) if isinstance(step, ModelStep)), None)
        return (last.finish_reason if last is not None else None) or "stop"


@dataclass(frozen=True)
class RunOptions:
    """Per-request inputs besides the messages: who asks, and what the HTTP request carried."""

    caller: Caller
    conversation_id: str | None = None
    trace_headers: Mapping[str, str] | None = None
    task_class: str | None = None
    request_key: str | None = None
    """Idempotency scope of side-effecting tool calls (the Idempotency-Key header, else the conversation)."""
    task_id: str | None = None
    """The run is this task's: approval-requiring tools park it, tool calls are keyed by (task, step, index)."""
    resume: Checkpoint | None = None
    """Continue a parked run: its pending tool calls run first (the approved ones allowed)."""
    takeover: bool = False
    """An earlier attempt of this task may have died mid-call: its pending tool calls may run again."""
    between_steps: Callable[[], Awaitable[None]] | None = None
    """Awaited before each model call; raising stops the run there (a task's cancellation)."""


class Checkpoint(BaseModel):
    """A run parked before tool calls that need a reviewer's approval: everything needed to resume it.

    ``prompt`` ends with the assistant message asking for the pending calls; ``step`` is the index of that
    model call (so the resumed calls keep their idempotency keys).
    """

    model_config = ConfigDict(extra="forbid")

    agent: str
    step: int
    prompt: list[dict[str, Any]]
    steps: list[ModelStep | ToolStep]
    usage: TokenUsage
    approved: list[str] = []
    """The :func:`approval_key` of each call a reviewer approved (entries of checkpoints written before the
    keys bound the arguments are bare call ids: they match no call, so those calls are reviewed again)."""

    def pending_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
            for c in self.prompt[-1].get("tool_calls", ())
        )


def approval_key(call_id: str, tool: str, args_sha256: str) -> str:
    """What an approval is stored as: the call's id, its tool and the digest of its exact argument text, so
    approving one call never lets another run, whatever id the model gives it."""
    return json.dumps([call_id, tool, args_sha256])


def approval_key_of(call: ToolCall) -> str:
    return approval_key(call.id, call.name, audit.digest(call.arguments))


class ApprovalRequired(Exception):
    """The run stopped at ``call`` of a tool that ``requires_approval``; ``checkpoint`` resumes it."""

    def __init__(self, checkpoint: Checkpoint, call: ToolCall) -> None:
        super().__init__(f"tool call '{call.name}' ({call.id}) waits for a reviewer's approval")
        self.checkpoint = checkpoint
        self.call = call


class Runner(Protocol):
    """What the API, the task worker and the hosts run agents through: :class:`AgentRunner`, or the
    orchestrator's runner that wraps it. The shared clients are exposed so callers need nothing else."""

    @property
    def settings(self) -> Settings: ...

    @property
    def catalog(self) -> AgentCatalog: ...

    @property
    def telemetry(self) -> Telemetry: ...

    @property
    def guardrails(self) -> Guardrails: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    async def run(self, agent: Agent, messages: Sequence[Message], options: RunOptions) -> RunResult: ...

    def stream(
        self, agent: Agent, messages: Sequence[Message], options: RunOptions
    ) -> AsyncGenerator[TextDelta | RunResult, None]: ...


@dataclass(frozen=True)
class AgentRunner:
    """Runs agents; one per process, shared by all requests (it holds only long-lived clients)."""

    settings: Settings
    catalog: AgentCatalog
    llm: ChatModel
    gateway: ModelGateway
    guardrails: Guardrails
    telemetry: Telemetry
    conversations: ConversationStore
    vectors: VectorStore
    knowledge: KnowledgeAccess
    tools: ToolExecutor
    http: httpx.AsyncClient

    async def run(self, agent: Agent, messages: Sequence[Message], options: RunOptions) -> RunResult:
        """Run to the answer; raises a :class:`LimitExceeded` or :class:`ModelError` if there is none."""
        async with contextlib.aclosing(self._events(agent, messages, options, streaming=False)) as events:
            async for event in events:  # nothing else is awaited here: the run's one timer spans its yields
                if isinstance(event, RunResult):
                    return event
        raise AssertionError("the agent loop ended without a result")

    def stream(
        self, agent: Agent, messages: Sequence[Message], options: RunOptions
    ) -> AsyncGenerator[TextDelta | RunResult, None]:
        """Run, yielding the model's text as the output guard releases it and the :class:`RunResult` last
        (:data:`ANSWERING` first when the guard holds the opening words back)."""
        return self._events(agent, messages, options, streaming=True)

    async def _events(
        self, agent: Agent, messages: Sequence[Message], options: RunOptions, *, streaming: bool
    ) -> AsyncGenerator[TextDelta | RunResult, None]:
        deadline = asyncio.get_running_loop().time() + self.settings.deadline_seconds
        span = self.telemetry.start_run(agent.name, options.conversation_id, options.trace_headers)
        # A run that is not streamed is consumed by :meth:`run`, in one task that awaits nothing else
        # between its events: one timer bounds the whole run. A stream's events are taken by the response's
        # task, so there each step is bounded on its own (``step_deadline``) and no timer spans a ``yield``.
        step_deadline = deadline if streaming else None
        error: BaseException | None = None
        try:
            async with _RunTimer(deadline) if step_deadline is None else contextlib.nullcontext():
                if options.resume is None:  # a resumed run's input was screened when the task first ran
                    await _within(step_deadline, self._screen_input(messages), span)
                scope = CallScope(agent, options.caller, span, options.task_class)
                streamed = False
                try:
                    async for event in self._loop(agent, messages, options, scope, deadline, step_deadline):
                        streamed = streamed or (isinstance(event, TextDelta) and bool(event.text))
                        yield event
                except ModelError as failure:
                    fallback = agent.fallback_agent
                    if streamed or fallback is None or isinstance(failure, OutputBlocked):
                        raise
                    span.add_event(
                        "fallback_agent", {"gen_ai.agent.name": fallback, "error.type": failure.code}
                    )
                    substitute = self.catalog.get(fallback)
                    scope = CallScope(substitute, options.caller, span, options.task_class, first_call=False)
                    async for event in self._loop(
                        substitute, messages, options, scope, deadline, step_deadline
                    ):
                        yield event
        except ApprovalRequired as parked:
            span.add_event("awaiting_approval", {"gen_ai.tool.name": parked.call.name})
            raise
        except BaseException as failure:
            error = failure
            raise
        finally:
            self.telemetry.end(span, error)

    async def _loop(
        self,
        agent: Agent,
        messages: Sequence[Message],
        options: RunOptions,
        scope: CallScope,
        deadline: float,
        step_deadline: float | None,
    ) -> AsyncGenerator[TextDelta | RunResult, None]:
        """The model and tool turns of one agent; ``step_deadline`` bounds each await when no timer bounds
        the whole run (a stream: see :meth:`_events`)."""
        span = scope.span
        streaming = step_deadline is not None
        resume = options.resume if options.resume and options.resume.agent == agent.name else None
        if resume is not None:
            prompt, first = list(resume.prompt), resume.step
            usage, steps = resume.usage, list(resume.steps)
        else:
            prompt = await _within(step_deadline, self._prompt(agent, messages, options, span), span)
            first, usage, steps = 0, TokenUsage(), []
        spent = usage.total_tokens
        """The run's tokens as its ``token_budget`` counts them: each call at what the gateway charged it
        (:attr:`Routed.charged`, as the budget ledger settles it), its hold when the model reported no usage
        or less than it certainly spent, so such a model is stopped as an honest one is (``usage`` is as
        reported)."""
        context = ToolContext(
            caller=options.caller,
            agent=agent.name,
            settings=self.settings,
            llm=self.llm,
            vectors=self.vectors,
            http=self.http,
            knowledge=self.knowledge,
        )
        request_key = options.request_key or options.conversation_id or os.urandom(16).hex()
        specs = self.tools.registry.specs(agent.tools)
        answering = False
        output = self.guardrails.output_stream()
        """What of the run's text reaches the caller: one guard reads every model call's, each call a part."""
        for step in range(first, agent.max_steps):
            if resume is not None and step == first:  # the parked turn: its calls run before the model's next
                pending, approved = resume.pending_calls(), frozenset(resume.approved)
            else:
                if options.between_steps is not None:
                    await options.between_steps()
                routed: Routed | None = None
                calls = self.gateway.call(scope, prompt, specs, deadline=deadline, streaming=streaming)
                async for event in _stream_within(step_deadline, calls, span):
                    if not isinstance(event, TextDelta):
                        routed = event
                    elif released := output.feed(event.text):
                        answering = True
                        yield TextDelta(released)
                    elif not answering:
                        answering = True
                        yield ANSWERING  # the guard holds the first words: the caller may start its response
                if routed is None:
                    raise AssertionError("the model call ended without a completion")
                completion = routed.completion
                usage += completion.usage
                steps.append(_model_step(completion, routed.route_reason))
                if not completion.tool_calls:
                    if tail := output.finish():
                        yield TextDelta(tail)
                    answer = self.guardrails.check_output(completion.content or "")
                    await _within(step_deadline, self.remember(agent, messages, answer, options), span)
                    yield RunResult(agent.name, answer, options.conversation_id, usage, steps)
                    return
                output.end_part()  # another call follows, after the tools
                spent += routed.charged
                if spent >= agent.token_budget:
                    raise BudgetExceeded(
                        f"agent '{agent.name}' spent {spent} tokens of its budget of "
                        f"{agent.token_budget} without answering"
                    )
                _refuse_repeated_ids(completion.tool_calls)
                prompt.append(completion.as_message())
                pending, approved = completion.tool_calls, frozenset()
            if options.task_id is not None:
                self._park_unapproved(pending, agent, options.caller, step, prompt, steps, usage, approved)
            results = await _within(
                step_deadline,
                self._run_tools(pending, agent, context, span, options, step, approved, request_key),
                span,
            )
            for call, result in zip(pending, results, strict=True):
                steps.append(result.step)
                prompt.append({"role": "tool", "tool_call_id": call.id, "content": result.content})
        raise StepLimitExceeded(f"agent '{agent.name}' did not answer within {agent.max_steps} model calls")

    async def _screen_input(self, messages: Sequence[Message]) -> None:
        """Screen the text the caller sent, whatever its role: on the chat route the caller writes the whole
        conversation, its system and assistant turns too (a stored conversation's history is not among
        ``messages``: it was screened when it was new)."""
        texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
        if texts:
            await self.guardrails.check_input("\n".join(texts))

    def _park_unapproved(
        self,
        calls: Sequence[ToolCall],
        agent: Agent,
        caller: Caller,
        step: int,
        prompt: list[Message],
        steps: list[Step],
        usage: TokenUsage,
        approved: frozenset[str],
    ) -> None:
        """Raise :class:`ApprovalRequired` at the first unapproved call of a tool that needs approval (and
        that the agent and caller may use at all: a call that would be denied is not worth a reviewer's
        time). Calls of one turn are reviewed one by one; the checkpoint keeps those already approved."""
        for call in calls:
            if approval_key_of(call) in approved:
                continue
            try:
                tool: Tool = authorize(
                    call.name, agent_tools=agent.tools, caller=caller, registry=self.tools.registry
                )
            except ToolDenied:
                continue
            if tool.requires_approval:
                checkpoint = Checkpoint(
                    agent=agent.name,
                    step=step,
                    prompt=prompt,
                    steps=steps,
                    usage=usage,
                    approved=sorted(approved),
                )
                raise ApprovalRequired(checkpoint, call)

    async def _run_tools(
        self,
        calls: Sequence[ToolCall],
        agent: Agent,
        context: ToolContext,
        span: Span,
        options: RunOptions,
        step: int,
        approved: Collection[str],
        request_key: str,
    ) -> list[ToolResult]:
        """The calls of one model turn, concurrently, each an ``execute_tool`` span; results in call
        order, with output that looks like a prompt injection withheld from the model.

        A task's calls are keyed by (task, step, index): a model asked again after a crash may word the
        call differently or give it another id, and it must still not repeat the action.
        """
        if options.task_id is not None:
            scopes = [f"task\0{options.task_id}\0{step}\0{i}\0{c.name}" for i, c in enumerate(calls)]
        else:
            scopes = [f"{request_key}\0{call.id}\0{call.arguments}" for call in calls]
        results = list(
            await asyncio.gather(
                *(
                    self._run_tool(
                        call, agent, context, span, scope, approval_key_of(call) in approved, options.takeover
                    )
                    for call, scope in zip(calls, scopes, strict=True)
                )
            )
        )
        withheld = await self._withheld(
            [result.content for result in results],
            span,
            "tool_output_withheld",
            [{"gen_ai.tool.name": call.name} for call in calls],
        )
        return [
            ToolResult(TOOL_OUTPUT_WITHHELD, result.step) if hidden else result
            for result, hidden in zip(results, withheld, strict=True)
        ]

    async def _withheld(
        self, texts: Sequence[str], span: Span, event: str, attributes: Sequence[dict[str, str]]
    ) -> list[bool]:
        """Which of ``texts``, bound for the model from outside the caller's own words, to withhold: those the
        tool-output screen flags while screening enforces, each recorded as ``event`` on the run's span with
        its ``attributes`` and the reason."""
        detections = await self.guardrails.screen(texts, "tool")
        if not self.guardrails.enforcing:
            return [False] * len(texts)
        for detection, named in zip(detections, attributes, strict=True):
            if detection is not None:
                span.add_event(event, {**named, "reason": detection.reason})
        return [detection is not None for detection in detections]

    async def _run_tool(
        self,
        call: ToolCall,
        agent: Agent,
        context: ToolContext,
        parent: Span,
        scope: str,
        approved: bool,
        takeover: bool,
    ) -> ToolResult:
        span = self.telemetry.start_tool(parent, call.name, call.id, agent.name)
        try:
            with self.telemetry.active(span):
                result = await self.tools.run(
                    call,
                    agent_tools=agent.tools,
                    context=context,
                    idempotency_scope=scope,
                    approved=approved,
                    resume_pending=takeover,
                )
            if result.step.outcome != "ok":
                span.set_attribute("error.type", result.step.outcome)
            self.telemetry.content(
                span, "gen_ai.tool.message", {"arguments": call.arguments, "result": result.content}
            )
        finally:
            self.telemetry.end(span)
        return result

    async def _prompt(
        self, agent: Agent, messages: Sequence[Message], options: RunOptions, span: Span
    ) -> list[Message]:
        """Instructions, recalled memory, the caller's earlier turns, then the new messages.

        Recalled memory is screened as the same hits are when the ``memory_search`` tool returns them: its text
        comes from whatever filled the agent's memory, not from the caller, and here it would reach the model
        as a system message. Hits the screen withholds are left out."""
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
            withheld = await self._withheld(
                [hit.text for hit in hits], span, "memory_withheld", [{"memory.id": hit.id} for hit in hits]
            )
            if kept := [hit.text for hit, hidden in zip(hits, withheld, strict=True) if not hidden]:
                passages = "\n".join(f"- {text}" for text in kept)
                prompt.append({"role": "system", "content": f"Relevant long-term memory:\n{passages}"})
        if options.conversation_id and agent.memory.history_window:
            prompt.extend(
                await self.conversations.history(
                    options.caller.owner, options.conversation_id, limit=agent.memory.history_window
                )
            )
        prompt.extend(messages)
        return prompt

    async def remember(
        self, agent: Agent, messages: Sequence[Message], answer: str, options: RunOptions
    ) -> None:
        """Store the turn, redacted: the caller's messages and the answer (as :meth:`Guardrails.check_output`
        returned it), not the tool traffic between them.

        Tool messages are only valid right after the assistant message that asked for them; a history
        window could cut such a pair apart, so only self-contained messages are kept.
        """
        if options.conversation_id and agent.memory.persist:
            turn: list[Message] = [
                *self.guardrails.redactor.redact_messages(messages),
                {"role": "assistant", "content": self.guardrails.stored_answer(answer)},
            ]
            await self.conversations.append(options.caller.owner, options.conversation_id, turn)


def _model_step(completion: Any, route_reason: str) -> ModelStep:
    return ModelStep(
        model=completion.model,
        finish_reason=completion.finish_reason,
        tool_calls=[call.name for call in completion.tool_calls],
        usage=completion.usage,
        latency_ms=round(completion.latency_ms, 3),
        route=route_reason,
    )


def _refuse_repeated_ids(calls: Sequence[ToolCall]) -> None:
    """A turn whose tool calls share an id is refused: each result is matched to its call by id, and so is
    a reviewer's approval, which must never cover a second call the reviewer was not shown. The ids are
    the model's words (a self-hosted model or an injected prompt may repeat them), not a guarantee."""
    ids = [call.id for call in calls]
    if len(set(ids)) != len(ids):
        raise ModelError("the model answered with tool calls that share an id; the turn is refused")


def _last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            return content
    return ""


async def _within(deadline: float | None, awaitable: Awaitable[T], span: Span) -> T:
    """Await with the run's span current, before ``deadline`` (else :class:`DeadlineExceeded`); ``None``
    when a timer around the whole run bounds it already (:class:`_RunTimer`)."""
    with Telemetry.active(span):
        if deadline is None:
            return await awaitable
        try:
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except TimeoutError as timeout:
            raise DeadlineExceeded(DEADLINE_MESSAGE) from timeout


async def _stream_within(
    deadline: float | None, events: AsyncGenerator[T, None], span: Span
) -> AsyncGenerator[T, None]:
    """Each event of ``events`` before the deadline (the timeout never spans a ``yield`` to the consumer)."""
    try:
        while True:
            try:
                event = await _within(deadline, anext(events), span)
            except StopAsyncIteration:
                return
            yield event
    finally:
        await events.aclose()


class _RunTimer:
    """One timer for a whole run, in the task that consumes it; :class:`DeadlineExceeded` when it fires.

    A class rather than a timeout per step: arming and cancelling a loop timer is most of what a timeout
    costs, and a run that is not streamed took seven of them.
    """

    def __init__(self, deadline: float) -> None:
        self._timeout = asyncio.timeout_at(deadline)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, error, trace)
        except TimeoutError as timeout:
            raise DeadlineExceeded(DEADLINE_MESSAGE) from timeout
