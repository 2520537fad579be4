"""Runs orchestrator agents; hands every other agent to the wrapped :class:`AgentRunner`.

An orchestration, in order: the caller must hold one of the orchestrator's ``roles``; the caller's input
is screened for prompt injection (refused before anything is delegated); the delegates are chosen (rules or
the model router, or the agent that holds the conversation after a handoff); each gets a sub-task on its
queue; the orchestrator waits for them until ``subtask_deadline_seconds`` and answers with what came back.
Sub-tasks run with the caller's own identity and roles, so a delegate's tools are exactly as available as
if the caller had asked the delegate directly: delegation never widens access. They also keep the caller's
application (stored on each sub-task's record), so the delegates' model calls spend that application's
budgets, never the shared quota of the unknown application.

The whole run is one ``orchestrate <agent>`` span (child of the caller's ``traceparent``) with a
``delegate <agent>`` span per sub-task, whose context travels in the task message: the delegates'
``invoke_agent``, ``chat`` and ``execute_tool`` spans belong to the same trace.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import httpx
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent_runtime.agents import Agent, AgentCatalog, Orchestration
from agent_runtime.errors import AgentRuntimeError, DeadlineExceeded, Forbidden
from agent_runtime.gateway import CallScope
from agent_runtime.governance.guardrails import Guardrails
from agent_runtime.llm import TextDelta
from agent_runtime.memory.base import Message
from agent_runtime.orchestrator import aggregate
from agent_runtime.orchestrator.delegation import Assignment, Delegator
from agent_runtime.orchestrator.errors import DelegationFailed, ServedElsewhere
from agent_runtime.orchestrator.handoff import Handoffs
from agent_runtime.orchestrator.model import ask
from agent_runtime.orchestrator.outcome import Delegation
from agent_runtime.orchestrator.routing import (
    Selection,
    last_user_text,
    parse_router_answer,
    route_by_rules,
    router_prompt,
)
from agent_runtime.runner import AgentRunner, RunOptions, RunResult
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import SharedTaskService
from agent_runtime.telemetry import Telemetry
from agent_runtime.trace import ModelStep, TokenUsage

_PROPAGATOR = TraceContextTextMapPropagator()
WAIT_SHARE_OF_REMAINING = 0.9
"""At most this share of the run's remaining time is spent waiting for delegates; the rest is for answering."""


@dataclass
class OrchestrationResult(RunResult):
    """A run's result plus each delegate's outcome (``agent`` is the delegate's after a handoff)."""

    delegations: list[Delegation] = field(default_factory=list)


class OrchestratingRunner:
    """Same ``run``/``stream`` as :class:`AgentRunner`; one per process, shared by all requests."""

    def __init__(self, inner: AgentRunner, tasks: SharedTaskService) -> None:
        self.inner = inner
        # Checked at assembly (check_agent_queues): a JSON object of agent name -> queue.
        self._elsewhere: dict[str, str] = json.loads(inner.settings.agent_queues or "{}")
        self._delegator = Delegator(tasks, inner.settings, inner.telemetry.tracer)
        self._handoffs = Handoffs(inner.conversations)

    # The shared clients a runner's users (the API, the task worker) reach through it, as on AgentRunner.

    @property
    def settings(self) -> Settings:
        return self.inner.settings

    @property
    def catalog(self) -> AgentCatalog:
        return self.inner.catalog

    @property
    def telemetry(self) -> Telemetry:
        return self.inner.telemetry

    @property
    def guardrails(self) -> Guardrails:
        return self.inner.guardrails

    @property
    def http(self) -> httpx.AsyncClient:
        return self.inner.http

    async def run(self, agent: Agent, messages: Sequence[Message], options: RunOptions) -> RunResult:
        if agent.orchestration is None:
            self._check_local(agent)
            return await self.inner.run(agent, messages, options)
        return await self._orchestrate(agent, agent.orchestration, messages, options)

    def stream(
        self, agent: Agent, messages: Sequence[Message], options: RunOptions
    ) -> AsyncGenerator[TextDelta | RunResult, None]:
        """Plain agents stream as they think; an orchestrator's answer is one piece, when it is complete."""
        if agent.orchestration is None:
            self._check_local(agent)
            return self.inner.stream(agent, messages, options)
        return self._stream_whole(agent, messages, options)

    def _check_local(self, agent: Agent) -> None:
        queue = self._elsewhere.get(agent.name)
        if queue is not None:
            raise ServedElsewhere(agent.name, queue)

    async def _stream_whole(
        self, agent: Agent, messages: Sequence[Message], options: RunOptions
    ) -> AsyncGenerator[TextDelta | RunResult, None]:
        result = await self.run(agent, messages, options)
        yield TextDelta(result.answer)
        yield result

    async def _orchestrate(
        self, agent: Agent, plan: Orchestration, messages: Sequence[Message], options: RunOptions
    ) -> OrchestrationResult:
        telemetry = self.inner.telemetry
        span = self._start_span(agent, plan, options)
        deadline = asyncio.get_running_loop().time() + self.inner.settings.deadline_seconds
        error: BaseException | None = None
        try:
            with Telemetry.active(span):
                async with asyncio.timeout_at(deadline):
                    return await self._steps(agent, plan, messages, options, span, deadline)
        except TimeoutError as timeout:
            error = DeadlineExceeded("the orchestrator did not finish before its deadline")
            raise error from timeout
        except BaseException as failure:
            error = failure
            raise
        finally:
            telemetry.end(span, error)

    def _start_span(self, agent: Agent, plan: Orchestration, options: RunOptions) -> Span:
        attributes: dict[str, str | Sequence[str]] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent.name,
            "agentstage.orchestration.mode": plan.mode,
            "agentstage.orchestration.router": plan.router,
        }
        if options.conversation_id:
            attributes["gen_ai.conversation.id"] = options.conversation_id
        parent = _PROPAGATOR.extract(options.trace_headers) if options.trace_headers else None
        return self.inner.telemetry.tracer.start_span(
            f"orchestrate {agent.name}", parent, SpanKind.SERVER, attributes
        )

    async def _steps(
        self,
        agent: Agent,
        plan: Orchestration,
        messages: Sequence[Message],
        options: RunOptions,
        span: Span,
        deadline: float,
    ) -> OrchestrationResult:
        caller = options.caller
        if plan.roles and not caller.has_any_role(plan.roles):
            raise Forbidden(f"caller '{caller.id}' may not use orchestrator '{agent.name}'")
        if options.resume is None:  # a resumed task's input was screened when it first ran
            await self._screen(messages)
        scope = CallScope(agent, caller, span, options.task_class)
        steps: list[ModelStep] = []
        selection = await self._select(agent, plan, messages, options, scope, steps, deadline)
        span.set_attribute("agentstage.orchestration.selected", list(selection.agents))
        span.set_attribute("agentstage.orchestration.route", selection.source)
        if options.between_steps is not None:  # the orchestrator's own task may have been cancelled
            await options.between_steps()
        if plan.mode == "handoff":
            return await self._hand_off(agent, plan, selection, messages, options, span, steps, deadline)
        history = await self._history(agent, options)
        assignments = [Assignment(name, [*history, *messages]) for name in selection.agents]
        delegations = await self._delegate(plan, assignments, options, span, deadline)
        if not any(d.succeeded for d in delegations):
            raise DelegationFailed(delegations)
        answer = await self._aggregate(agent, plan, messages, delegations, scope, steps, deadline)
        answer = self.inner.guardrails.check_output(answer)
        await self.inner.remember(agent, messages, answer, options)
        usage = _total([*(s.usage for s in steps), *(d.usage for d in delegations)])
        return OrchestrationResult(agent.name, answer, options.conversation_id, usage, [*steps], delegations)

    async def _screen(self, messages: Sequence[Message]) -> None:
        texts = [
            m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)
        ]
        if texts:
            await self.inner.guardrails.check_input("\n".join(texts))

    async def _select(
        self,
        agent: Agent,
        plan: Orchestration,
        messages: Sequence[Message],
        options: RunOptions,
        scope: CallScope,
        steps: list[ModelStep],
        deadline: float,
    ) -> Selection:
        if plan.mode == "handoff" and options.conversation_id:
            holder = await self._handoffs.holder(options.caller.owner, options.conversation_id)
            if holder in plan.delegates:
                return Selection((holder,), "handoff")
        text = last_user_text(messages)
        if plan.router == "rules":
            return route_by_rules(plan, text)
        return await self._route_by_model(agent, plan, text, scope, steps, deadline)

    async def _route_by_model(
        self,
        agent: Agent,
        plan: Orchestration,
        text: str,
        scope: CallScope,
        steps: list[ModelStep],
        deadline: float,
    ) -> Selection:
        """The model's choice; the rules' when its answer is unusable or the call fails."""
        single = plan.mode == "handoff"
        prompt = router_prompt(agent, self.inner.catalog, text, single=single)
        try:
            completion, step = await ask(self.inner.gateway, scope, prompt, deadline=deadline)
        except AgentRuntimeError as error:
            scope.span.add_event("router_fallback", {"reason": f"model call failed: {error.code}"})
            return route_by_rules(plan, text)
        steps.append(step)
        try:
            chosen = parse_router_answer(completion.content, plan.delegates, single=single)
        except ValueError as malformed:
            scope.span.add_event("router_fallback", {"reason": f"unusable answer: {malformed}"})
            return route_by_rules(plan, text)
        return Selection(chosen, "model")

    async def _delegate(
        self,
        plan: Orchestration,
        assignments: Sequence[Assignment],
        options: RunOptions,
        span: Span,
        deadline: float,
    ) -> list[Delegation]:
        """The delegates' outcomes, waited for until ``subtask_deadline_seconds`` or, when routing took
        long, until the run's own deadline, so partial results are never lost to a :class:`DeadlineExceeded`."""
        remaining = deadline - asyncio.get_running_loop().time()
        return await self._delegator.run(
            assignments,
            options.caller,
            span,
            wait_seconds=min(plan.subtask_deadline_seconds, remaining * WAIT_SHARE_OF_REMAINING),
            parent_task=options.task_id,
            request_key=options.request_key,
            task_class=options.task_class,
        )

    async def _hand_off(
        self,
        agent: Agent,
        plan: Orchestration,
        selection: Selection,
        messages: Sequence[Message],
        options: RunOptions,
        span: Span,
        steps: list[ModelStep],
        deadline: float,
    ) -> OrchestrationResult:
        """The first chosen delegate answers and keeps the conversation (its own memory continues it)."""
        target = selection.agents[0]
        assignment = Assignment(target, messages, options.conversation_id)
        [delegation] = await self._delegate(plan, [assignment], options, span, deadline)
        if not delegation.succeeded:
            raise DelegationFailed([delegation])
        span.add_event("handoff", {"gen_ai.agent.name": target, "agentstage.handoff.from": agent.name})
        if options.conversation_id and selection.source != "handoff":
            await self._handoffs.record(options.caller.owner, options.conversation_id, agent.name, target)
        usage = _total([*(s.usage for s in steps), delegation.usage])
        answer = delegation.answer or ""
        return OrchestrationResult(target, answer, options.conversation_id, usage, [*steps], [delegation])

    async def _aggregate(
        self,
        agent: Agent,
        plan: Orchestration,
        messages: Sequence[Message],
        delegations: Sequence[Delegation],
        scope: CallScope,
        steps: list[ModelStep],
        deadline: float,
    ) -> str:
        """Concatenated, or the model's synthesis; a failed synthesis falls back to the concatenation."""
        if plan.aggregate == "concat":
            return aggregate.concat(delegations)
        screened = await self._withhold_injections(delegations)
        prompt = aggregate.synthesis_prompt(agent, last_user_text(messages), screened)
        try:
            completion, step = await ask(self.inner.gateway, scope, prompt, deadline=deadline)
        except AgentRuntimeError as error:
            scope.span.add_event("synthesis_fallback", {"reason": error.code})
            return aggregate.concat(delegations)
        steps.append(step)
        return completion.content or aggregate.concat(delegations)

    async def _withhold_injections(self, delegations: Sequence[Delegation]) -> list[Delegation]:
        """Delegates' answers are untrusted input to the orchestrator's model, screened like tool output."""
        guardrails = self.inner.guardrails
        answers = [d.answer or "" for d in delegations]
        detections = await guardrails.screen(answers, "tool")
        if not guardrails.enforcing:
            return list(delegations)
        return [
            d if found is None or not d.succeeded else _withheld(d)
            for d, found in zip(delegations, detections, strict=True)
        ]

    async def _history(self, agent: Agent, options: RunOptions) -> list[Message]:
        """The caller's earlier turns of this conversation (never anyone else's, whatever the id)."""
        if not options.conversation_id or not agent.memory.history_window:
            return []
        return await self.inner.conversations.history(
            options.caller.owner, options.conversation_id, limit=agent.memory.history_window
        )


def _total(usages: Sequence[TokenUsage]) -> TokenUsage:
    total = TokenUsage()
    for usage in usages:
        total += usage
    return total


def _withheld(delegation: Delegation) -> Delegation:
    error = {"code": "output_withheld", "message": "the answer looked like a prompt injection"}
    return Delegation(delegation.agent, delegation.task_id, "failed", None, error, delegation.usage)
