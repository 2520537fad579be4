"""Calls waiting for room that calls in flight hold: queued per budget counter, served in arrival order
within the process.

When a budget has no room only because calls in flight hold it, the call waits instead of being refused.
Waiters of one counter form a queue; only its head retries, when a call of this process holding that
counter settles (it is woken at once) or when its polling pause ends (settlements in other processes are
seen only through the ledger). A call that arrives while others wait on one of its counters queues behind
them rather than taking room as it frees up, so the waiters are served in the order they came. The queue
is the process's own: another process's calls, woken by their own settlements, can take the room first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field


@dataclass
class Waiter:
    """One call in a queue: ``turn`` resolves when it heads the queue, ``wake`` is set when a call holding
    its counter settles."""

    turn: asyncio.Future[None]
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class HeldQueue:
    def __init__(self) -> None:
        self._queues: dict[str, deque[Waiter]] = {}

    def waiting_on(self, keys: Iterable[str]) -> str | None:
        """The first of ``keys`` that calls are waiting on, if any (a newcomer queues behind them)."""
        return next((key for key in keys if key in self._queues), None)

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[Waiter]:
        """Join ``key``'s queue and wait to head it; leaving (however) hands the turn to the next."""
        waiter = Waiter(asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(key, deque())
        queue.append(waiter)
        if len(queue) == 1:
            waiter.turn.set_result(None)
        try:
            await waiter.turn
            yield waiter
        finally:
            queue.remove(waiter)
            if not queue:
                del self._queues[key]
            elif not queue[0].turn.done():
                queue[0].turn.set_result(None)

    def settled(self, keys: Iterable[str]) -> None:
        """A call holding ``keys`` settled: the head of each of their queues tries again now."""
        for key in keys:
            queue = self._queues.get(key)
            if queue:
                queue[0].wake.set()
