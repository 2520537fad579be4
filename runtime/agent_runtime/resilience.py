"""Retries with backoff, circuit breakers per model deployment, and fallback across deployments.

The model client (:mod:`agent_runtime.llm`) never retries on its own, so these are the only retries and
every attempt is visible in traces and metrics. A transient failure (429, 5xx, timeout, unreachable,
malformed answer) is retried after ``min(retry_max, base * 2**attempt) * random()`` seconds ("full jitter",
so a crowd of clients does not retry in lockstep), or after the endpoint's ``Retry-After`` when that is
longer. A wait that would not fit before the request's deadline, or exceeds ``retry_max_seconds``, is not
taken: the next deployment is tried instead. Each deployment has a breaker: ``failure_threshold``
consecutive failures open it, calls then skip it for ``reset_seconds``, after which one probe (half-open)
decides between closing and reopening. Breakers live in the process: every instance learns on its own, at
the cost of a few calls.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from agent_runtime.errors import ModelError, ModelUnavailable

T = TypeVar("T")


class BreakerState(IntEnum):
    """Numeric so the state can be a metric: 0 closed, 1 half-open, 2 open."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(self, failure_threshold: int, reset_seconds: float, clock: Callable[[], float]) -> None:
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_after(self) -> float:
        return 0.0 if self._opened_at is None else max(0.0, self._opened_at + self._reset - self._clock())

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open state only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def abandon(self) -> None:
        """A call was cancelled (deadline, client gone) before it could tell anything: free the probe."""
        self._probing = False

    def failure(self) -> None:
        self._probing = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self._threshold:
            self._opened_at = self._clock()


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_seconds: float
    max_seconds: float

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Full-jitter backoff before retry number ``retry`` (0-based), at least ``retry_after``."""
        backoff = random.uniform(0.0, min(self.max_seconds, self.base_seconds * 2**retry))
        return max(backoff, retry_after or 0.0)


class Observer:
    """What the resilience layer reports (telemetry implements it); the default ignores everything."""

    def retry(self, deployment: str, error: ModelError, delay: float) -> None: ...

    def failure(self, deployment: str, error: ModelError) -> None: ...

    def breaker(self, deployment: str, state: BreakerState) -> None: ...


Attempt = Callable[[str], AsyncGenerator[T, None]]
"""Runs one call on a deployment, yielding its events (text pieces, then a completion)."""


class Resilience:
    """Runs a model call on the first healthy deployment of a list, with retries, breakers and fallback."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        failure_threshold: int,
        reset_seconds: float,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._observer = observer or Observer()
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, deployment: str) -> CircuitBreaker:
        breaker = self._breakers.get(deployment)
        if breaker is None:
            breaker = self._breakers[deployment] = CircuitBreaker(self._threshold, self._reset, self._clock)
        return breaker

    async def call(
        self, deployments: Sequence[str], attempt: Attempt[T], *, deadline: float
    ) -> AsyncGenerator[T, None]:
        """Events of the first deployment that succeeds. Once an event has been yielded (streamed text
        reached the caller) a failure is final: repeating the call would repeat what was already sent.

        Raises the last :class:`ModelError`, or :class:`ModelUnavailable` when every breaker was open so
        no deployment was even tried.
        """
        last: ModelError | None = None
        for deployment in deployments:
            breaker = self.breaker(deployment)
            for retry in range(self._policy.max_retries + 1):
                if not breaker.allow():
                    break
                yielded = False
                try:
                    async for event in attempt(deployment):
                        yielded = True
                        yield event
                except ModelError as error:
                    last = error
                    breaker.abandon()
                    self._failed(deployment, breaker, error)
                    if yielded or not error.retryable:
                        raise
                    if retry == self._policy.max_retries:
                        break
                    delay = self._policy.delay(retry, error.retry_after)
                    remaining = deadline - asyncio.get_running_loop().time()
                    if delay > self._policy.max_seconds or delay >= remaining:
                        break
                    self._observer.retry(deployment, error, delay)
                    await asyncio.sleep(delay)
                    continue
                except BaseException:
                    breaker.abandon()
                    raise
                self._succeeded(deployment, breaker)
                return
        if last is None:
            wait = min(self.breaker(d).retry_after() for d in deployments)
            unavailable = ModelUnavailable(
                f"model deployment(s) {', '.join(deployments)} are failing; their circuit breakers are open"
            )
            unavailable.retry_after = wait
            raise unavailable
        raise last

    def _failed(self, deployment: str, breaker: CircuitBreaker, error: ModelError) -> None:
        self._observer.failure(deployment, error)
        if not error.retryable:
            return  # the request's fault (400, 401, ...), not the deployment's health
        before = breaker.state
        breaker.failure()
        if breaker.state is not before:
            self._observer.breaker(deployment, breaker.state)

    def _succeeded(self, deployment: str, breaker: CircuitBreaker) -> None:
        before = breaker.state
        breaker.success()
        if before is not BreakerState.CLOSED:
            self._observer.breaker(deployment, BreakerState.CLOSED)
