"""Task records in Amazon DynamoDB (``state_backend=dynamodb``), on a table of their own.

Table (``dynamodb_tasks_table``): partition key ``pk`` (S), sort key ``sk`` (S), on-demand billing, no TTL,
and one global secondary index ``awaiting_approval``: partition key ``awaiting`` (S), sort key
``created_at`` (N), projection ``KEYS_ONLY``. Items:

- task: ``pk = "task#<id>"``, ``sk = "task"``; ``record`` (S, the record as JSON; or ``record_zlib`` (B),
  compressed, when it is large), ``version`` (N), ``created_at`` (N, the index's sort key: the task's
  creation, or while it is queued its last write), and ``awaiting`` (S, ``"awaiting_approval#tenant#<tenant>"``,
  the task's tenant, ``default`` for a caller without one) only while the task waits for a reviewer: its
  tenant's reviewers' queue; or (``"queued#<queue>"``) only while it is queued: its queue's queued tasks,
  oldest write first.
- review entry: ``pk = "task#<id>"``, ``sk = "review"``; ``awaiting`` (S, ``"awaiting_approval#all"``),
  ``created_at`` (N, the task's), ``version`` (N, the task's while it waits). It exists exactly while the
  task waits: every tenant's queue, which the platform's reviewers read.
- idempotency claim: ``pk = "claim#<sha256(caller, key)>"``, ``sk = "claim"``; ``task_id`` (S).
- child: ``pk = "children#<parent id>"``, ``sk = "<created_at as %017.6f>#<child id>"``; ``task_id`` (S).

The index is sparse: it holds the reviewers' queues, one partition per tenant and one of every tenant's, so
a tenant's reviewers read their own tenant's tasks only (a task item can sit in one partition only, hence
the review entry); and one partition per task queue of the queued tasks, for the sweep that re-sends the
message of a task queued long ago (:meth:`DynamoDBTaskStore.queued_before`). The index's keys stay those
infrastructure created: the queued tasks only add partitions, at the cost of one index write when a task is
queued and one when it leaves the queue. All the queued tasks of one queue share a partition, whose writes
DynamoDB serves up to about a thousand a second: some five hundred tasks a second per queue. Runtimes before
it did not file queued tasks, so a sweep does not see a task an older runtime queued.

``create`` writes the task, its claim and its child entry in one ``TransactWriteItems``, each conditioned
on not existing yet, so of two submissions with one idempotency key exactly one creates a task; the other
gets the claim's item back in the cancellation reason and returns the winner's task. ``replace`` is one
``PutItem`` conditioned on the stored ``version`` (compare-and-set: a lost race is :class:`TaskConflict`)
and on the task not waiting; a write that parks a task, or one refused because the task waited, is one
``TransactWriteItems`` that also writes or deletes its review entry, so task and entry never disagree.
Records and children are read strongly consistently. The reviewers' queues are read through the index,
which DynamoDB updates asynchronously (typically within a second): a task parked a moment ago may show a
moment later, and each listed task is read again from the table, so a task that has left the queue since
is never shown. A record holds at most 400 KB once compressed (the run's input, result and checkpoint).

Runtimes before the per-tenant queues gave a waiting task ``awaiting = "awaiting_approval"``, one partition
of every tenant's. Only a replica of such a runtime writes it now (during an upgrade), so a reader first
moves what that partition lists to the layout above (reading those records once, whatever their tenant;
an empty ``Query`` once none are left), and a task parked before an upgrade reaches its tenant's reviewers
(a moment later, as the index catches up). A review entry such a replica leaves behind when it decides a
task is deleted by the reader that finds it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.memory.dynamodb import (
    RETRYABLE_REASONS,
    Contention,
    DynamoDBClient,
    Item,
    TableSchema,
    cancellation_codes,
    error_code,
    n,
    pack_text,
    s,
    unpack_text,
)
from agent_runtime.tasks.model import TaskConflict, TaskRecord, TaskState, tenant_of

AWAITING_INDEX = "awaiting_approval"
TASKS_SCHEMA = TableSchema(indexes=((AWAITING_INDEX, ("awaiting", "S"), ("created_at", "N")),))
"""The tasks table's layout (see the module docstring); infrastructure creates it to match."""
_OLDER_QUEUE = TaskState.AWAITING_APPROVAL.value
"""``awaiting`` of a task parked by a runtime before the per-tenant queues."""
_EVERY_TENANT = f"{_OLDER_QUEUE}#all"
_QUEUED = f"{TaskState.QUEUED.value}#"
"""The prefix of ``awaiting`` of a queued task: its queue's partition of the index."""
_NAMES = {"#awaiting": "awaiting", "#version": "version"}
_MOVE_BATCH = 100
"""Records read at a time while moving an older runtime's queue (one ``BatchGetItem``)."""


def _tenant_queue(tenant: str) -> str:
    return f"{_OLDER_QUEUE}#tenant#{tenant}"


def _queued(queue: str) -> str:
    return f"{_QUEUED}{queue}"


def _task_key(task_id: str) -> Item:
    return {"pk": s(f"task#{task_id}"), "sk": s("task")}


def _entry_key(task_id: str) -> Item:
    return {"pk": s(f"task#{task_id}"), "sk": s("review")}


def _entry_item(record: TaskRecord) -> Item:
    """``record``'s review entry: the task in every tenant's queue, while it waits at this version."""
    return {
        **_entry_key(record.id),
        "awaiting": s(_EVERY_TENANT),
        "created_at": n(record.created_at),
        "version": n(record.version),
    }


def _claim_key(caller: str, key: str) -> Item:
    return {"pk": s("claim#" + hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()), "sk": s("claim")}


def _task_item(record: TaskRecord) -> Item:
    item = {
        **_task_key(record.id),
        **pack_text(record.model_dump_json(), "record"),
        "version": n(record.version),
        "created_at": n(record.created_at),
    }
    if record.state is TaskState.AWAITING_APPROVAL:
        item["awaiting"] = s(_tenant_queue(tenant_of(record)))
    elif record.state is TaskState.QUEUED:
        # The sweep wants the tasks least recently written: sorted by creation, the first ``limit`` could
        # all be tasks re-sent a moment ago, hiding every older orphan behind them.
        item["awaiting"] = s(_queued(record.queue))
        item["created_at"] = n(record.updated_at)
    return item


def _record(item: Item) -> TaskRecord:
    return TaskRecord.model_validate_json(unpack_text(item, "record"))


class DynamoDBTaskStore:
    """:class:`~agent_runtime.tasks.model.TaskStore` on a DynamoDB table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    @classmethod
    async def connect(cls, table: str, *, region: str | None = None) -> DynamoDBTaskStore:
        client = await DynamoDBClient.for_table(table, TASKS_SCHEMA, region)
        return cls(client, table)

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        task = {
            "Put": {
                "TableName": self._table,
                "Item": _task_item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        operations: list[dict[str, Any]] = [task]
        if record.idempotency_key is not None:
            claim = {**_claim_key(record.caller, record.idempotency_key), "task_id": s(record.id)}
            operations.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": claim,
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        if record.parent_id is not None:
            child = {
                "pk": s(f"children#{record.parent_id}"),
                "sk": s(f"{record.created_at:017.6f}#{record.id}"),
                "task_id": s(record.id),
            }
            operations.append({"Put": {"TableName": self._table, "Item": child}})
        if record.state is TaskState.AWAITING_APPROVAL:
            operations.append({"Put": {"TableName": self._table, "Item": _entry_item(record)}})
        contention = Contention(f"creating task {record.id}")
        while True:
            try:
                await self._client.call(
                    "transact_write_items", TransactItems=operations, ClientRequestToken=uuid.uuid4().hex
                )
                return record, True
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                codes = cancellation_codes(error)
                if codes and codes[0] == "ConditionalCheckFailed":
                    raise ValueError(f"task {record.id} exists") from error
                if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                    claimed = reasons[1].get("Item") or {}
                    existing = await self.get(claimed["task_id"]["S"]) if claimed else None
                    if existing is None:
                        raise RuntimeError(
                            f"the idempotency claim of task {record.id} names a missing task"
                        ) from error
                    return existing, False
                if not any(code in RETRYABLE_REASONS for code in codes):
                    raise
            await contention.lost()

    async def get(self, task_id: str) -> TaskRecord | None:
        reply = await self._client.call(
            "get_item", TableName=self._table, Key=_task_key(task_id), ConsistentRead=True
        )
        return _record(reply["Item"]) if "Item" in reply else None

    async def replace(self, record: TaskRecord, *, expected_version: int) -> TaskRecord:
        written = record.model_copy(update={"version": expected_version + 1})
        if written.state is TaskState.AWAITING_APPROVAL:
            entry = {"Put": {"TableName": self._table, "Item": _entry_item(written)}}
            await self._write_with_entry(written, expected_version, entry)
            return written
        try:
            # Most writes: the task neither waits nor did, so it has no review entry to delete.
            await self._client.call(
                "put_item",
                TableName=self._table,
                Item=_task_item(written),
                ConditionExpression="#version = :expected "
                "AND (attribute_not_exists(#awaiting) OR begins_with(#awaiting, :queued))",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":expected": n(expected_version), ":queued": s(_QUEUED)},
            )
            return written
        except ClientError as error:
            # A conflict with a transaction in flight is a lost race too: the caller reads and decides again.
            if error_code(error) == "TransactionConflictException":
                raise TaskConflict(f"task {record.id} changed since version {expected_version}") from None
            if error_code(error) != "ConditionalCheckFailedException":
                raise
        # Another writer won, or the task waited: then it leaves the queues, its review entry with it.
        entry = {"Delete": {"TableName": self._table, "Key": _entry_key(record.id)}}
        await self._write_with_entry(written, expected_version, entry)
        return written

    async def _write_with_entry(
        self, written: TaskRecord, expected_version: int, entry: dict[str, Any]
    ) -> None:
        """Write ``written`` iff the stored version is ``expected_version``, and ``entry`` (the Put or Delete
        of its review entry) with it, in one transaction."""
        task = {
            "TableName": self._table,
            "Item": _task_item(written),
            "ConditionExpression": "#version = :expected",
            "ExpressionAttributeNames": {"#version": "version"},
            "ExpressionAttributeValues": {":expected": n(expected_version)},
        }
        try:
            await self._client.call("transact_write_items", TransactItems=[{"Put": task}, entry])
        except ClientError as error:
            codes = cancellation_codes(error)
            if codes and (codes[0] == "ConditionalCheckFailed" or "TransactionConflict" in codes):
                raise TaskConflict(f"task {written.id} changed since version {expected_version}") from None
            raise

    async def children(self, parent_id: str) -> list[TaskRecord]:
        ids = [
            item["task_id"]["S"]
            async for item in self._client.query_all(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s(f"children#{parent_id}")},
                ConsistentRead=True,
            )
        ]
        return await self._records(ids)

    async def awaiting_approval(self, limit: int, *, tenant: str | None = None) -> list[TaskRecord]:
        found: list[TaskRecord] = []
        if limit <= 0:
            return found
        await self._move_older_queue()
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": AWAITING_INDEX,
            "KeyConditionExpression": "#awaiting = :awaiting",
            "ExpressionAttributeNames": {"#awaiting": "awaiting"},
            "ExpressionAttributeValues": {
                ":awaiting": s(_EVERY_TENANT if tenant is None else _tenant_queue(tenant))
            },
            "Limit": limit,
        }
        while len(found) < limit:
            page = await self._client.call("query", **query)
            ids = [item["pk"]["S"].removeprefix("task#") for item in page.get("Items", [])]
            # The index lags the table: keep only the tasks still waiting now.
            for record in await self._records(ids):
                if record.state is TaskState.AWAITING_APPROVAL:
                    found.append(record)
                elif tenant is None:
                    await self._delete_entry(record)
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda record: (record.created_at, record.id))[:limit]

    async def queued_before(self, queue: str, before: float, limit: int) -> list[TaskRecord]:
        """The queue's partition is sorted by last write: its first ``limit`` tasks written before
        ``before``, re-read from the table (the index lags it), are kept if still queued and unwritten since."""
        page = await self._client.call(
            "query",
            TableName=self._table,
            IndexName=AWAITING_INDEX,
            KeyConditionExpression="#awaiting = :queued AND created_at < :before",  # its last write
            ExpressionAttributeNames={"#awaiting": "awaiting"},
            ExpressionAttributeValues={":queued": s(_queued(queue)), ":before": n(before)},
            Limit=limit,
        )
        ids = [item["pk"]["S"].removeprefix("task#") for item in page.get("Items", [])]
        return [
            record
            for record in await self._records(ids)
            if record.state is TaskState.QUEUED and record.updated_at < before
        ]

    async def _delete_entry(self, record: TaskRecord) -> None:
        """Delete the review entry of ``record``'s task, which no longer waits as read: one an older runtime
        left behind when it decided the task. Only an entry older than ``record`` goes: one written since
        is the task's, waiting again. (An entry the index still lists after its deletion is gone already.)"""
        try:
            await self._client.call(
                "delete_item",
                TableName=self._table,
                Key=_entry_key(record.id),
                ConditionExpression="#version < :read",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":read": n(record.version)},
            )
        except ClientError as error:
            if error_code(error) not in ("ConditionalCheckFailedException", "TransactionConflictException"):
                raise

    async def _move_older_queue(self) -> None:
        """Move the tasks an older runtime parked, in one partition of every tenant's, to their tenant's
        queue and every tenant's (see the module docstring). A task changed since it was read is left: its
        writer moved it, or the next reader does."""
        ids = [
            item["pk"]["S"].removeprefix("task#")
            async for item in self._client.query_all(
                TableName=self._table,
                IndexName=AWAITING_INDEX,
                KeyConditionExpression="#awaiting = :awaiting",
                ExpressionAttributeNames={"#awaiting": "awaiting"},
                ExpressionAttributeValues={":awaiting": s(_OLDER_QUEUE)},
            )
        ]
        for start in range(0, len(ids), _MOVE_BATCH):
            for record in await self._records(ids[start : start + _MOVE_BATCH]):
                if record.state is TaskState.AWAITING_APPROVAL:
                    await self._move(record)

    async def _move(self, record: TaskRecord) -> None:
        """Put ``record``'s task, still waiting in the older partition at the version read, in its tenant's
        queue and its review entry in every tenant's, in one transaction; the record is not rewritten."""
        task = {
            "TableName": self._table,
            "Key": _task_key(record.id),
            "UpdateExpression": "SET #awaiting = :queue",
            "ConditionExpression": "#awaiting = :older AND #version = :version",
            "ExpressionAttributeNames": _NAMES,
            "ExpressionAttributeValues": {
                ":queue": s(_tenant_queue(tenant_of(record))),
                ":older": s(_OLDER_QUEUE),
                ":version": n(record.version),
            },
        }
        entry = {"TableName": self._table, "Item": _entry_item(record)}
        try:
            await self._client.call("transact_write_items", TransactItems=[{"Update": task}, {"Put": entry}])
        except ClientError as error:
            if not cancellation_codes(error):
                raise

    async def _records(self, ids: list[str]) -> list[TaskRecord]:
        """The records of ``ids`` that exist, in the order of ``ids``."""
        items = await self._client.get_many(self._table, [_task_key(task_id) for task_id in ids])
        records = {record.id: record for record in map(_record, items)}
        return [records[task_id] for task_id in dict.fromkeys(ids) if task_id in records]

    async def close(self) -> None:
        await self._client.close()
