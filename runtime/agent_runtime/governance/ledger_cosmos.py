"""The ledger on Azure Cosmos DB for NoSQL: the stage's own account, shared by every instance and process.

One container (``cosmos_ledger_container``, partition key ``/partition``, TTL on, no default) holds:

- one document per budget counter, all in the logical partition ``budgets``:
  ``{"id", "partition": "budgets", "key", "settled", "holds": {hold: [amount, lease_until]}, "ttl"}``.
  Writes are transactional batches whose replaces carry the read ``_etag`` (creates fail if another writer
  created the counter first): all or nothing, and a writer that lost a race (409/412) reads again and
  retries. Transactional batches are confined to one logical partition, which is why the counters share
  one: a reservation spans the tenant's, the caller's and the agent's budgets at once.
- one document per tool-call claim, each in a partition of its own (``{"id", "partition", "result",
  "ttl"}``): a claim is one ``create`` (409: someone else holds it).

Writes are *group-committed*. Each process queues its reservations and settlements; one flush reads the
counters they touch, applies them in arrival order in memory (each reservation granted or refused as if
alone), and writes every changed counter in one conditional batch. Racing per call instead would make
concurrent calls on one counter redo each other's work - quadratic in the calls in flight, each lost race
costing request units - so contention is left only between processes, and one round trip serves a whole
group. Cosmos DB serves up to 10,000 RU/s per logical partition; stages that need more use Redis.

Documents expire with the service's per-item TTL: counters when their window ends, claims with their TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from agent_runtime.cosmos_account import CosmosAccount
from agent_runtime.errors import Unavailable
from agent_runtime.governance.ledger import PENDING, Line, Refusal, Usage

if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy

T = TypeVar("T")
LEDGER_PARTITION_KEY = "/partition"
"""The ledger container's layout; infrastructure (components/azure/state_store.py) creates it to match."""
COUNTERS = "budgets"
"""The logical partition every counter lives in (transactional batches span one partition only)."""
TTL_MARGIN_SECONDS = 3600
"""A counter outlives its window by this much, so a late settlement still finds it."""
CONTENTION_SECONDS = 30.0
"""How long a group keeps retrying races lost to other processes' writes before it gives up."""
BATCH_COUNTERS = 100
"""Operations a transactional batch may hold: the counters one group commit may write."""


@dataclass
class _Reserve:
    hold: str
    lines: tuple[Line, ...]
    lease_seconds: float
    future: asyncio.Future[Refusal | list[int]]

    @property
    def keys(self) -> list[str]:
        return [line.key for line in self.lines]


@dataclass
class _Settle:
    hold: str
    spent: tuple[tuple[str, int], ...]
    future: asyncio.Future[None]

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.spent]


_Operation = _Reserve | _Settle


class CosmosLedger:
    def __init__(self, account: CosmosAccount, container: ContainerProxy) -> None:
        self._account = account
        self._container = container
        self._queue: list[_Operation] = []
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, endpoint: str, database: str, *, container: str, client_id: str | None = None
    ) -> CosmosLedger:
        account = CosmosAccount.connect(endpoint, client_id)
        try:
            proxy, _ = await account.container(database, container, LEDGER_PARTITION_KEY, default_ttl=-1)
        except BaseException:
            await account.close()
            raise
        return cls(account, proxy)

    async def reserve(self, hold: str, lines: Sequence[Line], lease_seconds: float) -> Refusal | list[int]:
        operation = _Reserve(hold, tuple(lines), lease_seconds, asyncio.get_running_loop().create_future())
        try:
            return await self._submit(operation)
        except asyncio.CancelledError:
            # If it is granted for a caller that is gone, give the room back rather than hold it until the
            # lease ends.
            operation.future.add_done_callback(lambda _: self._release_if_granted(operation))
            raise

    async def settle(self, hold: str, spent: Sequence[tuple[str, int]]) -> None:
        if spent:
            await self._submit(_Settle(hold, tuple(spent), asyncio.get_running_loop().create_future()))

    async def _submit(self, operation: _Operation) -> Any:
        self._enqueue(operation)
        return await asyncio.shield(operation.future)

    def _enqueue(self, operation: _Operation) -> None:
        self._queue.append(operation)
        if self._flusher is None or self._flusher.done():
            self._flusher = operation.future.get_loop().create_task(
                self._flush(), name="agentstage-ledger-flush"
            )

    def _release_if_granted(self, reserve: _Reserve) -> None:
        future = reserve.future
        if future.cancelled() or future.exception() is not None or isinstance(future.result(), Refusal):
            return
        release = _Settle(
            reserve.hold, tuple((key, 0) for key in reserve.keys), future.get_loop().create_future()
        )
        release.future.add_done_callback(_observed)  # nobody awaits it: a failure is only logged by the loop
        self._enqueue(release)

    async def _flush(self) -> None:
        """Commit queued operations, a group at a time, until the queue is empty."""
        while self._queue:
            group = _next_group(self._queue)
            del self._queue[: len(group)]
            try:
                results = await _retried(partial(self._commit, group))
            except Exception as error:  # noqa: BLE001 - every waiting caller gets the failure
                for operation in group:
                    if not operation.future.done():
                        operation.future.set_exception(error)
                continue
            for operation, result in zip(group, results, strict=True):
                if not operation.future.done():
                    operation.future.set_result(result)

    async def _commit(self, group: list[_Operation]) -> list[Any] | None:
        """Apply ``group`` to the counters as read now and write them back; ``None`` when a race was lost."""
        keys = list(dict.fromkeys(key for operation in group for key in operation.keys))
        read = dict(zip(keys, await asyncio.gather(*(self._counter(key) for key in keys)), strict=True))
        now = time.time()
        counters = {key: _folded(read[key], key, now) for key in keys}
        changed: set[str] = set()
        results: list[Any] = []
        for operation in group:
            if isinstance(operation, _Reserve):
                results.append(_hold(counters, operation, now, changed))
            else:
                results.append(_settle(counters, operation, changed))
        writes = [_write(read[key], counters[key]) for key in keys if key in changed]
        return results if not writes or await self._batch(writes) else None

    async def usage(self, keys: Sequence[str]) -> list[Usage]:
        documents = await asyncio.gather(*(self._counter(key) for key in keys))
        now = time.time()
        return [_usage(document, now) for document in documents]

    async def claim(self, key: str, ttl_seconds: float) -> str | None:
        from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

        claim = _claim_id(key)
        while True:
            try:
                await self._container.create_item(
                    {"id": claim, "partition": claim, "result": None, "ttl": max(1, math.ceil(ttl_seconds))}
                )
                return None
            except CosmosResourceExistsError:
                pass
            try:
                document = await self._container.read_item(claim, partition_key=claim)
            except CosmosResourceNotFoundError:
                continue  # it expired or was released between the two calls: claim it again
            return PENDING if document.get("result") is None else str(document["result"])

    async def complete(self, key: str, result: str, ttl_seconds: float) -> None:
        claim = _claim_id(key)
        await self._container.upsert_item(
            {"id": claim, "partition": claim, "result": result, "ttl": max(1, math.ceil(ttl_seconds))}
        )

    async def release(self, key: str) -> None:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        claim = _claim_id(key)
        try:
            await self._container.delete_item(claim, partition_key=claim)
        except CosmosResourceNotFoundError:
            pass

    async def close(self) -> None:
        """Let queued settlements reach the ledger (for up to :data:`CONTENTION_SECONDS`), then disconnect."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher], timeout=CONTENTION_SECONDS)
        await self._account.close()

    async def _counter(self, key: str) -> dict[str, Any] | None:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        try:
            return dict(await self._container.read_item(_counter_id(key), partition_key=COUNTERS))
        except CosmosResourceNotFoundError:
            return None

    async def _batch(self, operations: list[tuple[Any, ...]]) -> bool:
        """Run the writes as one transactional batch; ``False`` when another writer got there first."""
        from azure.cosmos.exceptions import CosmosBatchOperationError

        try:
            await self._container.execute_item_batch(operations, partition_key=COUNTERS)
        except CosmosBatchOperationError as error:
            if error.status_code in (409, 412):
                return False
            raise
        return True


def _observed(future: asyncio.Future[None]) -> None:
    """Mark a background operation's failure as retrieved (it was best effort)."""
    if not future.cancelled():
        future.exception()


def _hold(counters: dict[str, dict[str, Any]], reserve: _Reserve, now: float, changed: set[str]) -> Any:
    """Grant ``reserve`` on the in-memory counters (the totals after it), or refuse it (a :class:`Refusal`)."""
    totals: list[int] = []
    for index, line in enumerate(reserve.lines):
        usage = _usage(counters[line.key], now)
        if usage.settled + usage.held + line.amount > line.limit:
            return Refusal(index, usage.settled, usage.held)
        totals.append(usage.settled + usage.held + line.amount)
    for line in reserve.lines:
        counter = counters[line.key]
        counter["holds"][reserve.hold] = [line.amount, now + reserve.lease_seconds]
        counter["ttl"] = max(1, math.ceil(line.expires_at - now)) + TTL_MARGIN_SECONDS
        changed.add(line.key)
    return totals


def _settle(counters: dict[str, dict[str, Any]], settle: _Settle, changed: set[str]) -> None:
    """End the hold with what was spent; a hold that lapsed was counted in full and stays so."""
    for key, amount in settle.spent:
        counter = counters[key]
        if settle.hold in counter["holds"]:
            del counter["holds"][settle.hold]
            counter["settled"] = int(counter.get("settled", 0)) + amount
            changed.add(key)


def _next_group(queue: list[_Operation]) -> list[_Operation]:
    """The oldest operations that fit one transactional batch (at most 100 counters)."""
    group: list[_Operation] = []
    keys: set[str] = set()
    for operation in queue:
        more = keys | set(operation.keys)
        if group and len(more) > BATCH_COUNTERS:
            break
        group.append(operation)
        keys = more
    return group


def _counter_id(key: str) -> str:
    """Counter keys hold ``|`` and ``:``; a digest is always a valid id, and a fixed length."""
    return "counter-" + hashlib.sha256(key.encode()).hexdigest()


def _claim_id(key: str) -> str:
    return "claim-" + hashlib.sha256(key.encode()).hexdigest()


def _usage(document: dict[str, Any] | None, now: float) -> Usage:
    """Settled and held, holds whose lease passed counted as settled (as they will be once written)."""
    if document is None:
        return Usage(0, 0)
    settled, held = int(document.get("settled", 0)), 0
    for amount, lease_until in document.get("holds", {}).values():
        if lease_until <= now:
            settled += amount
        else:
            held += amount
    return Usage(settled, held)


def _folded(document: dict[str, Any] | None, key: str, now: float) -> dict[str, Any]:
    """The counter to write: holds whose lease passed moved into settled."""
    if document is None:
        return {"id": _counter_id(key), "partition": COUNTERS, "key": key, "settled": 0, "holds": {}}
    updated = {name: value for name, value in document.items() if not name.startswith("_")}
    holds = dict(updated.get("holds", {}))
    for hold, (amount, lease_until) in list(holds.items()):
        if lease_until <= now:
            updated["settled"] = int(updated.get("settled", 0)) + amount
            del holds[hold]
    updated["holds"] = holds
    return updated


def _write(read: dict[str, Any] | None, updated: dict[str, Any]) -> tuple[Any, ...]:
    """Create a counter nobody had, or replace the one read - only if nobody wrote it since."""
    if read is None:
        return ("create", (updated,))
    return ("replace", (updated["id"], updated), {"if_match_etag": read["_etag"]})


async def _retried(attempt: Callable[[], Awaitable[T | None]]) -> T:
    """Run ``attempt`` until it returns something other than ``None`` (a lost race), with jittered backoff;
    :class:`Unavailable` (503) if every race is lost for :data:`CONTENTION_SECONDS`."""
    deadline = time.monotonic() + CONTENTION_SECONDS
    pause = 0.002
    while True:
        result = await attempt()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise Unavailable(
                f"the budget ledger is contended: every write for {CONTENTION_SECONDS:g} s lost a race"
            )
        await asyncio.sleep(random.uniform(0, pause))
        pause = min(pause * 2, 0.1)
