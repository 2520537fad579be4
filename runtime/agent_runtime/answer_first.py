"""Work a request's answer does not wait for: done by the request once its answer is sent.

A budget settlement is such work (:meth:`~agent_runtime.governance.budgets.Budgets.settle`). The caller's
answer does not depend on it, and until it lands the call's hold - its worst case - stands in for it, so
nothing can be overspent meanwhile: another call finding the room held waits for the settlement as it waits
for any call in flight. In line, it took ~60 us of every answer on the SQLite ledger (the served path's
median, stamped), and a round trip on a network ledger (Redis, DynamoDB, Cosmos DB). Once the answer is
sent, nobody hears of a failure but the log: the answer stands, and the hold lapses with its lease.

Inside :func:`answering_first` (the hot routes' requests) such work is kept, not started, and done in the
request's own task once the block's body - which sends the answer - has ended: no task and no turn of the
event loop more than in line. A request that reserves budget again first (a run's next model call) does its
kept work before (:func:`do_kept_work`), so a run never waits for its own hold. And the request still ends
only after it: a host that freezes the process once the handler returns (Lambda, Functions) never freezes a
settlement half-done. Outside such a request (the task worker, a direct call) the work is done where it is
handed over, as it always was.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar

Work = Callable[[], Awaitable[None]]


class _Kept:
    """The work kept for after the answer of one request, each with what reports its failure; closed once
    done, so work handed over later (an abandoned generator finalised in a copy of the request's context) is
    done at once instead of kept for nobody."""

    def __init__(self) -> None:
        self.work: list[tuple[Work, Callable[[Exception], None]]] = []
        self.open = True

    async def do(self) -> None:
        """Each in turn; if interrupted (the request cancelled again), what is left is never done, as after
        a crash."""
        while self.work:
            work, report = self.work.pop(0)
            try:
                await work()
            except Exception as error:  # noqa: BLE001 - the answer is sent: reported, not raised
                report(error)


_KEPT: ContextVar[_Kept | None] = ContextVar("agentstage_answer_first", default=None)
"""The work kept for after the answer of the request under way, when it answers first."""


def answering_first() -> AbstractAsyncContextManager[None]:
    """A request that answers first: work handed to :meth:`AfterAnswer.run` inside the block is done when
    the block's body has ended (the answer is sent by then), however it ended. Tasks copy the context they
    start in, so work handed over in the tasks of a streamed response is kept too."""
    return _AnsweringFirst()


class _AnsweringFirst(AbstractAsyncContextManager[None]):
    """:func:`answering_first`'s block; a class, not a generator under ``asynccontextmanager``: every served
    request enters one, and a generator costs one more object to make, drive and finalise."""

    __slots__ = ("_kept", "_token")

    async def __aenter__(self) -> None:
        self._kept = _Kept()
        self._token = _KEPT.set(self._kept)

    async def __aexit__(self, *exc_info: object) -> None:
        _KEPT.reset(self._token)
        try:
            await self._kept.do()
        finally:
            self._kept.open = False


async def do_kept_work() -> None:
    """Do the request's kept work now: before it reserves budget again, which must not wait for itself."""
    kept = _KEPT.get()
    if kept is not None:
        await kept.do()


class AfterAnswer:
    """Hands work of one kind over to be done after the answer, and logs its failure: the answer is gone by
    then, so nobody else would hear of it."""

    def __init__(self, log: logging.Logger, failure: str) -> None:
        """``failure`` is the log line of work that failed (the error follows it)."""
        self._log = log
        self._failure = failure

    async def run(self, work: Work) -> None:
        """Keep ``work`` for after the answer inside :func:`answering_first`; else do it now."""
        kept = _KEPT.get()
        if kept is None or not kept.open:
            await work()
        else:
            kept.work.append((work, self._report))

    def _report(self, error: Exception) -> None:
        self._log.error("%s: %s: %s", self._failure, type(error).__name__, error)
