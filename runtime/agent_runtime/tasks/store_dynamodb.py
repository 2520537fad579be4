"""Task records in Amazon DynamoDB (``state_backend=dynamodb``), on a table of their own.

Table (``dynamodb_tasks_table``): partition key ``pk`` (S), sort key ``sk`` (S), on-demand billing, no TTL,
and one global secondary index ``awaiting_approval``: partition key ``awaiting`` (S), sort key
``created_at`` (N), projection ``KEYS_ONLY``. Items:

- task: ``pk = "task#<id>"``, ``sk = "task"``; ``record`` (S, the record as JSON; or ``record_zlib`` (B),
  compressed, when it is large), ``version`` (N), ``created_at`` (N), and ``awaiting`` (S, always
  ``"awaiting_approval"``) only while the task waits for a reviewer: the index is sparse, it holds the
  reviewers' queue and nothing else.
- idempotency claim: ``pk = "claim#<sha256(caller, key)>"``, ``sk = "claim"``; ``task_id`` (S).
- child: ``pk = "children#<parent id>"``, ``sk = "<created_at as %017.6f>#<child id>"``; ``task_id`` (S).

``create`` writes the task, its claim and its child entry in one ``TransactWriteItems``, each conditioned
on not existing yet, so of two submissions with one idempotency key exactly one creates a task; the other
gets the claim's item back in the cancellation reason and returns the winner's task. ``replace`` is one
``PutItem`` conditioned on the stored ``version`` (compare-and-set: a lost race is :class:`TaskConflict`).
Records and children are read strongly consistently. The reviewers' queue is read through the index,
which DynamoDB updates asynchronously (typically within a second): a task parked a moment ago may show a
moment later, and each listed task is read again from the table, so a task that has left the queue since
is never shown. A record holds at most 400 KB once compressed (the run's input, result and checkpoint).
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
from agent_runtime.tasks.model import TaskConflict, TaskRecord, TaskState

AWAITING_INDEX = "awaiting_approval"
TASKS_SCHEMA = TableSchema(indexes=((AWAITING_INDEX, ("awaiting", "S"), ("created_at", "N")),))
"""The tasks table's layout (see the module docstring); infrastructure creates it to match."""
_AWAITING = TaskState.AWAITING_APPROVAL.value


def _task_key(task_id: str) -> Item:
    return {"pk": s(f"task#{task_id}"), "sk": s("task")}


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
        item["awaiting"] = s(_AWAITING)
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
        try:
            await self._client.call(
                "put_item",
                TableName=self._table,
                Item=_task_item(written),
                ConditionExpression="#version = :expected",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":expected": n(expected_version)},
            )
        except ClientError as error:
            # A conflict with a transaction in flight is a lost race too: the caller reads and decides again.
            if error_code(error) in ("ConditionalCheckFailedException", "TransactionConflictException"):
                raise TaskConflict(f"task {record.id} changed since version {expected_version}") from None
            raise
        return written

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

    async def awaiting_approval(self, limit: int) -> list[TaskRecord]:
        found: list[TaskRecord] = []
        if limit <= 0:
            return found
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": AWAITING_INDEX,
            "KeyConditionExpression": "#awaiting = :awaiting",
            "ExpressionAttributeNames": {"#awaiting": "awaiting"},
            "ExpressionAttributeValues": {":awaiting": s(_AWAITING)},
            "Limit": limit,
        }
        while len(found) < limit:
            page = await self._client.call("query", **query)
            ids = [item["pk"]["S"].removeprefix("task#") for item in page.get("Items", [])]
            # The index lags the table: keep only the tasks still waiting now.
            current = await self._records(ids)
            found += [record for record in current if record.state is TaskState.AWAITING_APPROVAL]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda record: (record.created_at, record.id))[:limit]

    async def _records(self, ids: list[str]) -> list[TaskRecord]:
        """The records of ``ids`` that exist, in the order of ``ids``."""
        items = await self._client.get_many(self._table, [_task_key(task_id) for task_id in ids])
        records = {record.id: record for record in map(_record, items)}
        return [records[task_id] for task_id in dict.fromkeys(ids) if task_id in records]

    async def close(self) -> None:
        await self._client.close()
