"""The governed path of one model call: reserve budget, route, call with resilience, trace, settle.

Order matters. The reservation comes first, so a request over budget never reaches the model (429 with
the budget named). Routing comes next, because the reservation tells how close the budgets are to their
limits. Each attempt (retries and fallback deployments included) is its own ``chat`` span. Settling runs
whatever happened, once, at what every attempt spent (:class:`_Spending`): its reported usage; nothing for an
attempt the model failed before answering; its whole hold when what it spent is not known (a stream cut
after the answer began, in text or in a tool call, a caller who left, an endpoint reporting no usage, or
less than the call certainly spent). The :class:`Routed` completion carries that figure, so an agent's
``token_budget`` counts each call at exactly what the ledger is charged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, partial
from typing import Any, Protocol

from opentelemetry.trace import Span

from agent_runtime.caller import Caller
from agent_runtime.errors import ModelError
from agent_runtime.governance.budget_rules import prompt_bytes
from agent_runtime.governance.budgets import Budgets, Reservation
from agent_runtime.governance.routing import RoutingPolicy, choose
from agent_runtime.llm import ChatModel, Completion, Progress, TextDelta
from agent_runtime.memory.base import Message
from agent_runtime.resilience import Resilience
from agent_runtime.telemetry import Telemetry
from agent_runtime.trace import TokenUsage


class RoutedAgent(Protocol):
    """What the gateway needs to know of an agent."""

    name: str
    model: str
    fallback_models: tuple[str, ...]
    routing: RoutingPolicy | None
    max_output_tokens: int


@dataclass
class CallScope:
    """One run as the gateway sees it; ``first_call`` makes the run's first reservation count a request."""

    agent: RoutedAgent
    caller: Caller
    span: Span
    task_class: str | None = None
    first_call: bool = True


@dataclass(frozen=True)
class Routed:
    """A finished call, with the deployment that answered, why it was chosen and what the call was charged."""

    completion: Completion
    route_reason: str
    charged: int
    """The tokens the call is charged, every attempt's (:class:`_Spending`): what the budget ledger settles
    it at, and what its run's ``token_budget`` counts, so the two never disagree. Charged with or without
    budgets: a run's ``token_budget`` applies either way."""


@dataclass
class _Spending:
    """What the attempts of one call spent, summed for the call's one settlement.

    Each attempt is charged as it ends: at its reported usage when it finished (at its hold when the endpoint
    reported none, or less than the call certainly spent: :func:`_fewest_tokens`); at its hold when it failed
    after the model began answering, whether with text or with pieces of a tool call, since the provider
    bills every token it generated though the runtime never learns how many (the hold, the worst case the
    call reserved, is the most one attempt can have spent); at nothing when it failed before. A retry is
    another attempt, charged again: a retry that succeeds does not make the tokens of the failed attempts
    before it free. An attempt still running when the call ends (the caller left, the deadline passed) is
    charged its hold, as a caller closing the connection just before a stream's end would otherwise be
    served for free.
    """

    compute_hold: Callable[[], TokenUsage]
    """Computes :attr:`hold`, when first needed: without budgets, a call whose usage is believed never needs
    it, and it costs a pass over the prompt's bytes."""
    spent: TokenUsage = field(default_factory=TokenUsage)
    running: bool = False
    answering: bool = False
    """Whether the model of the running attempt has sent a piece of its answer (text or tool call)."""

    @cached_property
    def hold(self) -> TokenUsage:
        """The worst case of one attempt: the reservation's prompt bound and the agent's output cap."""
        return self.compute_hold()

    def start(self) -> None:
        """An attempt begins."""
        self.running, self.answering = True, False

    def finished(self, reported: TokenUsage, fewest: int) -> None:
        """The running attempt's completion arrived, with the usage its endpoint reported; usage below
        ``fewest``, the tokens the call certainly spent, is not usage (none reported is zero): the hold."""
        self._end(reported if reported.total_tokens >= fewest else self.hold)

    def failed(self) -> None:
        """The running attempt ended with a :class:`ModelError`."""
        self._end(self.hold if self.answering else TokenUsage())

    def total(self) -> TokenUsage:
        """What the call spent, to settle at: every attempt's charge, the one still running at its hold."""
        return self.spent + self.hold if self.running else self.spent

    def _end(self, usage: TokenUsage) -> None:
        if self.running:  # charged once, whatever is reported after its end
            self.spent += usage
            self.running = False


class ModelGateway:
    def __init__(
        self,
        llm: ChatModel,
        budgets: Budgets,
        resilience: Resilience,
        telemetry: Telemetry,
        *,
        call_timeout: float,
        redact: Callable[[str], str],
    ) -> None:
        """``redact`` cleans the text of a failure before it reaches a caller (see :meth:`_scrubbed`)."""
        self._llm = llm
        self._budgets = budgets
        self._resilience = resilience
        self._telemetry = telemetry
        self._call_timeout = call_timeout
        self._redact = redact
        self._spec_bytes: dict[str, int] = {}

    async def call(
        self,
        scope: CallScope,
        prompt: Sequence[Message],
        specs: Sequence[dict[str, Any]],
        *,
        deadline: float,
        streaming: bool,
    ) -> AsyncGenerator[TextDelta | Routed, None]:
        """Text pieces (when streaming), then the :class:`Routed` completion."""
        agent = scope.agent
        reservation: Reservation | None = None
        # The prompt's size, once, when first needed: by the reservation, or without budgets by a hold only.
        size = cache(lambda: prompt_bytes(prompt, self._spec_bytes_of(agent.name, specs)))
        if self._budgets.active:
            reservation = await self._budgets.reserve(
                caller=scope.caller,
                agent=agent.name,
                model=agent.model,
                prompt_bytes=size(),
                output_tokens=agent.max_output_tokens,
                first_call=scope.first_call,
                deadline=deadline,
            )
            self._telemetry.budget_pressure(agent.name, reservation.pressure)
        spending = _Spending(lambda: self._hold(size(), agent.max_output_tokens))
        scope.first_call = False
        route = choose(
            agent.model,
            agent.routing,
            prompt,
            task_class=scope.task_class,
            pressure=reservation.pressure if reservation else 0.0,
        )
        deployments = list(dict.fromkeys((route.model, *agent.fallback_models)))

        async def attempt(deployment: str) -> AsyncGenerator[TextDelta | Routed, None]:
            reason = route.reason if deployment == route.model else "fallback"
            spending.start()
            try:
                async for event in self._attempt(
                    scope, deployment, reason, prompt, specs, streaming, spending
                ):
                    if isinstance(event, TextDelta):
                        yield event
                    else:  # the completion ends the call: nothing is charged after it, so this settles
                        spending.finished(event.usage, _fewest_tokens(prompt, specs, event))
                        yield Routed(event, reason, spending.total().total_tokens)
            except ModelError:
                spending.failed()
                raise

        try:
            async for event in self._resilience.call(deployments, attempt, deadline=deadline):
                yield event
        except ModelError as failure:
            raise self._scrubbed(failure)
        finally:
            if reservation is not None:
                await self._budgets.settle(reservation, spending.total())

    async def _attempt(
        self,
        scope: CallScope,
        deployment: str,
        reason: str,
        prompt: Sequence[Message],
        specs: Sequence[dict[str, Any]],
        streaming: bool,
        spending: _Spending,
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """One HTTP call to one deployment, as one ``chat`` span, bounded by the per-call timeout.

        A completion is bounded once, around its one request. A stream is bounded by each wait for the next
        piece of the answer, however long it has run: a piece of text, or :class:`Progress` for a piece of
        a tool call, which is not passed on. A model writing a long tool call is making progress though it
        sends no text; one that sends only keep-alives or empty deltas is not, and times out (else it would
        hold the call until the run's deadline). Progress pushes the running timer back rather than
        starting a new one: ~2 µs a piece, where a timer per piece, as per piece of text, costs ~5 µs.

        Either kind of piece sets ``spending.answering``: the model has begun spending tokens, so the attempt
        is charged if it fails now (:class:`_Spending`), though only text is passed on (and so only text
        makes a failure final rather than retried).
        """
        telemetry = self._telemetry
        span = telemetry.start_chat(scope.span, deployment, scope.agent.name, reason)
        telemetry.content(span, "gen_ai.input.messages", prompt)
        started = time.perf_counter()
        cap = scope.agent.max_output_tokens
        loop = asyncio.get_running_loop()
        events: AsyncGenerator[TextDelta | Progress | Completion, None]
        if streaming:
            events = self._llm.stream(deployment, prompt, specs, max_output_tokens=cap)
        else:
            complete = partial(self._llm.complete, deployment, prompt, specs, max_output_tokens=cap)
            events = _one(complete, self._call_timeout)
        error: BaseException | None = None
        try:
            while True:
                with telemetry.active(span):
                    try:
                        if not streaming:
                            event = await anext(events)
                        else:
                            async with asyncio.timeout(self._call_timeout) as timer:
                                event = await anext(events)
                                while isinstance(event, Progress):
                                    spending.answering = True
                                    timer.reschedule(loop.time() + self._call_timeout)
                                    event = await anext(events)
                    except StopAsyncIteration:
                        return
                    except TimeoutError as timeout:
                        raise ModelError("the model call timed out", retryable=True) from timeout
                if isinstance(event, Completion):
                    price = self._budgets.price(deployment)
                    cost = (
                        price.micro_usd(event.usage.prompt_tokens, event.usage.completion_tokens) / 1e6
                        if price
                        else 0.0
                    )
                    telemetry.model_call(
                        span,
                        model=deployment,
                        response_model=event.model,
                        usage=event.usage,
                        seconds=time.perf_counter() - started,
                        cost=cost,
                    )
                    telemetry.content(span, "gen_ai.output.messages", event.as_message())
                    yield event
                else:
                    spending.answering = True
                    yield event
        except BaseException as failure:
            error = failure
            raise
        finally:
            await events.aclose()
            telemetry.end(span, error)

    async def embed(
        self,
        caller: Caller,
        agent: str,
        texts: Sequence[str],
        *,
        model: str,
        dimensions: int,
        deadline: float,
    ) -> list[list[float]]:
        """Embeddings of ``texts`` on the governed path: one budget reservation for the batch (counted as
        ``agent``'s, the caller's and its tenant's), retries and the breaker, an ``embeddings`` span with
        token metrics, and settlement whatever happens.

        Embedding APIs report no usage the runtime reads back, so the batch settles at the reservation's
        own estimate of its input tokens (an over-estimate, like every reservation).
        """
        size = sum(len(text.encode()) for text in texts)
        reservation: Reservation | None = None
        if self._budgets.active:
            reservation = await self._budgets.reserve(
                caller=caller,
                agent=agent,
                model=model,
                prompt_bytes=size,
                output_tokens=0,
                first_call=True,
                deadline=deadline,
            )
        usage = TokenUsage()

        async def attempt(deployment: str) -> AsyncGenerator[list[list[float]], None]:
            nonlocal usage
            span = self._telemetry.start_chat(None, deployment, agent, operation="embeddings")
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                with self._telemetry.active(span):
                    async with asyncio.timeout(self._call_timeout):
                        vectors = await self._llm.embed(texts, model=deployment, dimensions=dimensions)
                tokens = self._budgets.tokens_in(size)
                usage = TokenUsage(prompt_tokens=tokens, total_tokens=tokens)
                price = self._budgets.price(deployment)
                self._telemetry.model_call(
                    span,
                    model=deployment,
                    response_model=deployment,
                    usage=usage,
                    seconds=time.perf_counter() - started,
                    cost=price.micro_usd(tokens, 0) / 1e6 if price else 0.0,
                    operation="embeddings",
                )
                yield vectors
            except TimeoutError as timeout:
                error = ModelError("the embeddings call timed out", retryable=True)
                raise error from timeout
            except BaseException as failure:
                error = failure
                raise
            finally:
                self._telemetry.end(span, error)

        embedded: list[list[float]] = []
        try:
            async for vectors in self._resilience.call([model], attempt, deadline=deadline):
                embedded = vectors
        except ModelError as failure:
            raise self._scrubbed(failure)
        finally:
            if reservation is not None:
                await self._budgets.settle(reservation, usage)
        return embedded

    def _scrubbed(self, failure: ModelError) -> ModelError:
        """``failure`` with its message redacted: it quotes the endpoint's own error text, which may echo
        the runtime's credentials or a user's data, and callers are shown it (traces and logs redact on
        their own)."""
        failure.message = self._redact(failure.message)
        failure.args = (failure.message,)
        return failure

    def _hold(self, prompt_bytes: int, output_tokens: int) -> TokenUsage:
        """What a reservation of ``prompt_bytes`` and ``output_tokens`` holds, as usage: settled at, it spends
        exactly the hold's tokens and cost."""
        input_tokens = self._budgets.tokens_in(prompt_bytes)
        return TokenUsage(
            prompt_tokens=input_tokens,
            completion_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )

    def _spec_bytes_of(self, agent: str, specs: Sequence[dict[str, Any]]) -> int:
        """The size of an agent's tool schemas, computed once (they never change)."""
        spec_bytes = self._spec_bytes.get(agent)
        if spec_bytes is None:
            spec_bytes = self._spec_bytes[agent] = len(json.dumps(list(specs)).encode())
        return spec_bytes


def _fewest_tokens(prompt: Sequence[Message], specs: Sequence[dict[str, Any]], completion: Completion) -> int:
    """Tokens any model certainly spent on a call, whatever its tokenizer: every chat format delimits
    messages, tool schemas and tool calls from each other, so each non-empty one it read or wrote is at least
    a token of its own, and so is a non-empty answer. Usage reported below this is not usage (an endpoint or
    proxy that miscounts, or one that reports none: zero) and is not trusted; it is a floor, not an estimate,
    so an honest count is never replaced."""
    read = sum(1 for message in prompt if message.get("content") or message.get("tool_calls")) + len(specs)
    written = len(completion.tool_calls) + (1 if completion.content else 0)
    return max(1, read + written)


async def _one(
    complete: Callable[[], Awaitable[Completion]], timeout: float
) -> AsyncGenerator[Completion, None]:
    """A non-streamed call, bounded by ``timeout``, as a one-event stream, so both modes share the attempt
    logic."""
    async with asyncio.timeout(timeout):
        completion = await complete()
    yield completion
