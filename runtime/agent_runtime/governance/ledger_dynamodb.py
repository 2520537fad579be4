"""The ledger on Amazon DynamoDB: the stage's one table, shared by every instance and process.

Table (``dynamodb_ledger_table``): partition key ``pk`` (S), no sort key, no secondary index, TTL enabled
on attribute ``ttl`` (N, epoch seconds), on-demand billing. Items:

- counter: ``pk = "counter#<sha256(key)>"``; ``key`` (S, the budget counter's key), ``settled`` (N),
  ``committed`` (N, settled plus every hold's amount), ``expires_at`` (N, the window's end), ``ttl`` (N,
  the window's end plus :data:`TTL_MARGIN_SECONDS`), and per hold in flight ``h:<hold>`` (M: ``amount``,
  ``lease`` (N, epoch seconds)) and, for holds over several counters, ``b:<hold>`` (N, ``committed``
  before it).
- tool-call claim: ``pk = "claim#<sha256(key)>"``; ``expires_at`` (N), ``ttl`` (N), and once the call
  completed ``result`` (S; ``result_zlib`` (B) when large).

Reserve
    Each line is one update of its counter: ``SET h:<hold> = {amount, lease}, committed = committed +
    amount`` under the condition ``committed <= limit - amount AND attribute_not_exists(h:<hold>)``. DynamoDB
    evaluates the condition and applies the update as one step on the item, so the check and the add can
    never interleave with another writer's, in this process or any other. A reservation of one line is a
    plain ``UpdateItem``; one of several lines is a ``TransactWriteItems`` of those updates, which DynamoDB
    applies all or not at all. ``committed`` counts every hold, lapsed or not, so a call that died holding
    its worst case keeps it counted: nothing is ever overspent.

    A refused condition is a refusal: the first cancelled line with ``ConditionalCheckFailed`` is the
    refused line, and the item DynamoDB returns with it (``ReturnValuesOnConditionCheckFailure=ALL_OLD``)
    gives the counter's settled and held amounts at that moment, without another read. A cancellation for
    ``TransactionConflict`` (another transaction held one of the items), throttling, or a single update's
    ``TransactionConflictException`` wrote nothing and is retried with jittered exponential backoff, for up
    to :data:`~agent_runtime.memory.dynamodb.CONTENTION_SECONDS` (then 503). Every transaction carries a
    fresh ``ClientRequestToken``, so botocore's own retry of a request whose reply was lost cannot apply it
    twice. The totals a grant reports (settled + held after holding) come from the single update's new
    value, or for several lines from ``b:<hold>``, which the transaction set to ``committed`` before the
    hold: exact whatever other writers did since. Writes to one counter queue within a process, so a
    process never conflicts with itself; only processes race.

Settle
    Reads the hold (strongly consistent) and removes it in one conditional update that adds what was spent
    to ``settled`` and ``spent - amount`` to ``committed``, on condition that the hold is still there with
    that amount and its lease has not passed. A hold whose lease passed counts as spent in full: it is folded
    (removed, its amount added to ``settled``, ``committed`` unchanged) instead. Counters settle one by one;
    each settlement of a counter is atomic and happens once.

Usage
    Strongly consistent reads (``BatchGetItem``). Holds whose lease passed count as settled, and are folded
    into ``settled`` on the way (a best-effort write; they count the same either way). A counter past its
    window reads as 0 (``ttl`` deletes it within days; budget keys carry their window's start, so no call
    ever holds on it again).

Claims
    A claim is one ``PutItem`` conditioned on the claim not existing or having expired, so a record past
    its ``expires_at`` is never trusted, even before TTL deletes it (TTL deletion lags by up to days).
    ``ReturnValuesOnConditionCheckFailure`` returns the existing record in the same round trip.

Capacity
    Every reservation and settlement writes the counter's item, whose size grows with the holds in flight
    (~60 bytes each; the 400 KB item limit allows ~6,000 concurrent holds per counter). DynamoDB serves about
    1,000 writes/s per item at best, and transactions on a hot item conflict: with several processes on
    one budget, expect a few hundred reservations/s per counter. Stages that need more use Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.governance.ledger import PENDING, Line, Refusal, Usage
from agent_runtime.memory.dynamodb import (
    RETRYABLE_REASONS,
    TRANSACTION_ITEMS,
    Contention,
    DynamoDBClient,
    Item,
    KeyLocks,
    TableSchema,
    cancellation_codes,
    error_code,
    n,
    pack_text,
    s,
    unpack_text,
)

LEDGER_SCHEMA = TableSchema(sort_key=None)
"""The ledger table's layout: partition key ``pk`` (S) only; TTL on ``ttl``. Infrastructure creates it."""
TTL_ATTRIBUTE = "ttl"
TTL_MARGIN_SECONDS = 3600
"""A counter outlives its window by this much before TTL may delete it, so a late settlement finds it."""
CLOSE_WAIT_SECONDS = 5.0
"""How long close() waits for a cancelled reservation and its release before it disconnects."""
REMEMBERED_HOLDS = 10_000
"""Holds granted here whose amount and lease are remembered for their settlement (the oldest are forgotten:
settling those reads them first)."""
FOLD_BATCH = 50
"""Lapsed holds folded by one update (an update expression may be at most 4 KB long)."""
_CONFLICT = "TransactionConflictException"
_FAILED = "ConditionalCheckFailedException"
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")


def _counter_key(key: str) -> Item:
    return {"pk": s("counter#" + hashlib.sha256(key.encode()).hexdigest())}


def _claim_key(key: str) -> Item:
    return {"pk": s("claim#" + hashlib.sha256(key.encode()).hexdigest())}


def _expressions(names: dict[str, str], values: dict[str, Any], *expressions: str) -> dict[str, Any]:
    """The names and values the expressions use (DynamoDB refuses unused ones)."""
    used = set(_PLACEHOLDER.findall(" ".join(expressions)))
    params: dict[str, Any] = {"ExpressionAttributeNames": {k: v for k, v in names.items() if k in used}}
    chosen = {k: v for k, v in values.items() if k in used}
    if chosen:
        params["ExpressionAttributeValues"] = chosen
    return params


def _holds(item: Item) -> list[tuple[str, int, float]]:
    """Each hold on a counter item: (attribute name, amount, lease end)."""
    return [
        (name, int(value["M"]["amount"]["N"]), float(value["M"]["lease"]["N"]))
        for name, value in item.items()
        if name.startswith("h:")
    ]


def _usage(item: Item | None, now: float) -> Usage:
    """Settled and held, holds whose lease passed counted as settled."""
    if item is None:
        return Usage(0, 0)
    settled, held = int(item.get("settled", {"N": "0"})["N"]), 0
    for _, amount, lease in _holds(item):
        if lease <= now:
            settled += amount
        else:
            held += amount
    return Usage(settled, held)


class DynamoDBLedger:
    """:class:`~agent_runtime.governance.ledger.Ledger` on a DynamoDB table (see the module docstring)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table
        self._locks = KeyLocks()
        self._background: set[asyncio.Future[Any]] = set()
        self._granted: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        """(hold, key) -> (amount, lease end) of holds this process granted: their settlement needs no read."""

    @classmethod
    async def connect(cls, table: str, *, region: str | None = None) -> DynamoDBLedger:
        client = await DynamoDBClient.for_table(table, LEDGER_SCHEMA, region)
        return cls(client, table)

    # -- budgets ---------------------------------------------------------------------------------------------

    async def reserve(self, hold: str, lines: Sequence[Line], lease_seconds: float) -> Refusal | list[int]:
        lines = tuple(lines)
        keys = [line.key for line in lines]
        if not lines:
            return []
        if len(set(keys)) != len(keys):
            raise ValueError(f"a reservation holds each counter once, got {keys}")
        if len(lines) > TRANSACTION_ITEMS:
            raise ValueError(f"a reservation holds at most {TRANSACTION_ITEMS} counters, got {len(lines)}")
        attempt = asyncio.ensure_future(self._reserve(hold, lines, lease_seconds))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # Granted for a caller that is gone: give the room back rather than hold it until the lease ends.
            # Tracked until it ends, so that close() waits for the attempt and for its release.
            self._background.add(attempt)
            attempt.add_done_callback(partial(self._release_if_granted, hold, keys))
            attempt.add_done_callback(self._background.discard)
            raise

    async def _reserve(self, hold: str, lines: tuple[Line, ...], lease_seconds: float) -> Refusal | list[int]:
        contention = Contention("the budget ledger is contended")
        async with self._locks.hold(line.key for line in lines):
            while True:
                lease_until = time.time() + lease_seconds
                if len(lines) == 1:
                    result = await self._reserve_one(hold, lines[0], lease_until)
                else:
                    result = await self._reserve_all(hold, lines, lease_until)
                if result is not None:
                    break
                await contention.lost()
        if not isinstance(result, Refusal):
            for line in lines:
                self._granted[(hold, line.key)] = (line.amount, lease_until)
            while len(self._granted) > REMEMBERED_HOLDS:
                self._granted.popitem(last=False)
        if result is True:
            return await self._totals(hold, lines)
        assert not isinstance(result, bool)
        return result

    def _hold(self, hold: str, line: Line, lease_until: float, *, before: bool) -> dict[str, Any]:
        """The conditional update that holds ``line`` (``before``: also keep ``committed`` before it)."""
        names = {
            "#pk": "pk",
            "#h": f"h:{hold}",
            "#b": f"b:{hold}",
            "#c": "committed",
            "#s": "settled",
            "#k": "key",
            "#e": "expires_at",
            "#t": TTL_ATTRIBUTE,
            "#amount": "amount",
            "#lease": "lease",
        }
        values = {
            ":zero": n(0),
            ":a": n(line.amount),
            ":room": n(line.limit - line.amount),
            ":entry": {"M": {"amount": n(line.amount), "lease": n(lease_until)}},
            ":k": s(line.key),
            ":e": n(line.expires_at),
            ":t": n(max(0, math.ceil(line.expires_at)) + TTL_MARGIN_SECONDS),
        }
        update = (
            ("SET #b = if_not_exists(#c, :zero), " if before else "SET ")
            + "#c = if_not_exists(#c, :zero) + :a, #s = if_not_exists(#s, :zero), #h = :entry, "
            "#k = :k, #e = :e, #t = :t"
        )
        if line.limit - line.amount >= 0:
            condition = "(attribute_not_exists(#c) OR #c <= :room) AND attribute_not_exists(#h)"
        else:  # more than the limit: never, not even on a counter nobody holds yet
            condition = "attribute_exists(#pk) AND attribute_not_exists(#pk)"
        return {
            "TableName": self._table,
            "Key": _counter_key(line.key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **_expressions(names, values, update, condition),
        }

    async def _reserve_one(self, hold: str, line: Line, lease_until: float) -> Refusal | list[int] | None:
        """One counter: one ``UpdateItem``. ``None`` when it lost a race and may be repeated."""
        try:
            reply = await self._client.call(
                "update_item",
                **self._hold(hold, line, lease_until, before=False),
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            if error_code(error) == _FAILED:
                return await self._refused(hold, 0, line, error.response.get("Item"))
            if error_code(error) == _CONFLICT:
                return None
            raise
        return [int(reply["Attributes"]["committed"]["N"])]

    async def _reserve_all(
        self, hold: str, lines: tuple[Line, ...], lease_until: float
    ) -> Refusal | bool | None:
        """Several counters: one transaction. ``True`` when granted, ``None`` when it may be repeated."""
        operations = [{"Update": self._hold(hold, line, lease_until, before=True)} for line in lines]
        try:
            await self._client.call(
                "transact_write_items", TransactItems=operations, ClientRequestToken=uuid.uuid4().hex
            )
            return True
        except ClientError as error:
            codes = cancellation_codes(error)
            if not codes:
                raise
            reasons = error.response["CancellationReasons"]
            for index, code in enumerate(codes):
                if code == "ConditionalCheckFailed":
                    return await self._refused(hold, index, lines[index], reasons[index].get("Item"))
            if all(code in RETRYABLE_REASONS or code == "None" for code in codes):
                return None
            raise

    async def _refused(self, hold: str, index: int, line: Line, item: Item | None) -> Refusal:
        """The refusal of line ``index``, from the counter as DynamoDB evaluated the condition on it."""
        if item is not None and f"h:{hold}" in item:
            raise ValueError(f"hold {hold!r} already holds counter {line.key!r}")
        now = time.time()
        usage = _usage(item, now)
        if item is not None:
            await self._fold(line.key, item, now)  # this process holds the counter's lock
        return Refusal(index, usage.settled, usage.held)

    async def _totals(self, hold: str, lines: tuple[Line, ...]) -> list[int]:
        """Each counter's ``committed`` right after the transaction: ``b:<hold>`` plus the line's amount."""
        items = await self._client.get_many(
            self._table,
            [_counter_key(line.key) for line in lines],
            {
                "ProjectionExpression": "#k, #b, #c",
                "ExpressionAttributeNames": {"#k": "key", "#b": f"b:{hold}", "#c": "committed"},
            },
        )
        by_key = {item["key"]["S"]: item for item in items if "key" in item}
        totals = []
        for line in lines:
            item = by_key.get(line.key, {})
            if f"b:{hold}" in item:
                totals.append(int(item[f"b:{hold}"]["N"]) + line.amount)
            else:  # settled (or folded) already: the counter as it is now
                totals.append(int(item.get("committed", {"N": str(line.amount)})["N"]))
        return totals

    def _release_if_granted(self, hold: str, keys: list[str], attempt: asyncio.Future[Any]) -> None:
        if attempt.cancelled() or attempt.exception() is not None or isinstance(attempt.result(), Refusal):
            return
        release = asyncio.ensure_future(self.settle(hold, [(key, 0) for key in keys]))
        self._background.add(release)
        release.add_done_callback(self._forget)

    def _forget(self, future: asyncio.Future[Any]) -> None:
        self._background.discard(future)
        if not future.cancelled():
            future.exception()  # best effort: a failure only leaves the hold to lapse

    async def settle(self, hold: str, spent: Sequence[tuple[str, int]]) -> None:
        await asyncio.gather(*(self._settle(hold, key, amount) for key, amount in dict(spent).items()))

    async def _settle(self, hold: str, key: str, spent: int) -> None:
        contention = Contention("the budget ledger is contended")
        names = {"#h": f"h:{hold}", "#b": f"b:{hold}", "#s": "settled", "#c": "committed"}
        names |= {"#amount": "amount", "#lease": "lease"}
        known = self._granted.pop((hold, key), None)  # granted here: no need to read it
        while True:
            if known is None:
                reply = await self._client.call(
                    "get_item",
                    TableName=self._table,
                    Key=_counter_key(key),
                    ConsistentRead=True,
                    ProjectionExpression="#h",
                    ExpressionAttributeNames={"#h": names["#h"]},
                )
                entry = reply.get("Item", {}).get(names["#h"])
                if entry is None:
                    return  # settled already, or never held
                known = int(entry["M"]["amount"]["N"]), float(entry["M"]["lease"]["N"])
            held, lease_until = known
            now = time.time()
            if lease_until > now:
                update = "REMOVE #h, #b SET #s = #s + :spent, #c = #c + :delta"
                condition = "#h.#amount = :held AND #h.#lease > :now"
            else:  # the lease passed: it counts as spent in full, and stays so
                update = "REMOVE #h, #b SET #s = #s + :held"
                condition = "#h.#amount = :held"
            values = {":spent": n(spent), ":delta": n(spent - held), ":held": n(held), ":now": n(now)}
            async with self._locks.hold([key]):
                try:
                    await self._client.call(
                        "update_item",
                        TableName=self._table,
                        Key=_counter_key(key),
                        UpdateExpression=update,
                        ConditionExpression=condition,
                        **_expressions(names, values, update, condition),
                    )
                    return
                except ClientError as error:
                    if error_code(error) == _FAILED:
                        known = None  # settled meanwhile, or the lease just passed: read again
                        continue
                    if error_code(error) != _CONFLICT:
                        raise
            await contention.lost()

    async def _fold(self, key: str, item: Item, now: float) -> None:
        """Move holds whose lease passed into ``settled`` (they already count as settled); best effort."""
        lapsed = [(name, amount) for name, amount, lease in _holds(item) if lease <= now][:FOLD_BATCH]
        if not lapsed:
            return
        names = {"#s": "settled"}
        removed, conditions = [], []
        for index, (name, _) in enumerate(lapsed):
            names[f"#h{index}"], names[f"#b{index}"] = name, "b:" + name[2:]
            removed += [f"#h{index}", f"#b{index}"]
            conditions.append(f"attribute_exists(#h{index})")
        try:
            await self._client.call(
                "update_item",
                TableName=self._table,
                Key=_counter_key(key),
                UpdateExpression=f"REMOVE {', '.join(removed)} SET #s = #s + :lapsed",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":lapsed": n(sum(amount for _, amount in lapsed))},
            )
        except ClientError as error:
            if error_code(error) not in (_FAILED, _CONFLICT):
                raise  # settled or folded by another writer meanwhile: the next reader folds the rest

    async def usage(self, keys: Sequence[str]) -> list[Usage]:
        if not keys:
            return []
        items = await self._client.get_many(self._table, [_counter_key(key) for key in dict.fromkeys(keys)])
        now = time.time()
        by_key = {item["key"]["S"]: item for item in items if "key" in item}
        for key, item in by_key.items():
            if float(item.get("expires_at", {"N": "0"})["N"]) <= now:
                by_key[key] = {}  # past its window (TTL deletes it later)
            elif any(lease <= now for _, _, lease in _holds(item)):
                async with self._locks.hold([key]):
                    await self._fold(key, item, now)
        return [_usage(by_key.get(key) or None, now) for key in keys]

    # -- tool-call idempotency -------------------------------------------------------------------------------

    async def claim(self, key: str, ttl_seconds: float) -> str | None:
        contention = Contention("the idempotency records are contended")
        while True:
            now = time.time()
            try:
                await self._client.call(
                    "put_item",
                    TableName=self._table,
                    Item={**_claim_key(key), **self._expiry(now, ttl_seconds)},
                    # A record past its expiry is not trusted, whether or not TTL has deleted it yet.
                    ConditionExpression="attribute_not_exists(#pk) OR #e <= :now",
                    ExpressionAttributeNames={"#pk": "pk", "#e": "expires_at"},
                    ExpressionAttributeValues={":now": n(now)},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return None
            except ClientError as error:
                if error_code(error) == _FAILED:
                    stored = error.response.get("Item")
                    if stored is None:
                        continue  # gone between the check and the reply: claim again
                    if "result" in stored or "result_zlib" in stored:
                        return unpack_text(stored, "result")
                    return PENDING
                if error_code(error) != _CONFLICT:
                    raise
            await contention.lost()

    async def complete(self, key: str, result: str, ttl_seconds: float) -> None:
        item = {**_claim_key(key), **pack_text(result, "result"), **self._expiry(time.time(), ttl_seconds)}
        await self._retried("put_item", TableName=self._table, Item=item)

    async def release(self, key: str) -> None:
        await self._retried("delete_item", TableName=self._table, Key=_claim_key(key))

    @staticmethod
    def _expiry(now: float, ttl_seconds: float) -> Item:
        expires = now + ttl_seconds
        return {"expires_at": n(expires), TTL_ATTRIBUTE: n(math.ceil(expires))}

    async def _retried(self, operation: str, **params: Any) -> None:
        """An unconditional write, repeated while a transaction holds the item."""
        contention = Contention("the idempotency records are contended")
        while True:
            try:
                await self._client.call(operation, **params)
                return
            except ClientError as error:
                if error_code(error) != _CONFLICT:
                    raise
            await contention.lost()

    async def close(self) -> None:
        """Let background work finish (briefly): a cancelled reservation, then its release; then disconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_WAIT_SECONDS
        while self._background and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._background), timeout=left)
        await self._client.close()
