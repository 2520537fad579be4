"""Task records in Azure Cosmos DB for NoSQL (``state_backend=cosmos``), authenticated with Entra ID only.

The container (``cosmos_tasks_container``, partitioned by ``/id``) holds two kinds of documents:

- ``{"id": <task id>, "type": "task", "parentId", "version", "record": {...}}``, one per task. A write
  reads the document, checks its ``version`` and replaces it with the read ``_etag`` under
  ``MatchConditions.IfNotModified``, so a writer that lost a race gets HTTP 412 (:class:`TaskConflict`),
  never a silent overwrite.
- ``{"id": "idem-<sha256(caller, key)>", "type": "idempotency", "taskId": ...}``: the idempotency claim.
  Its id is deterministic, so of two concurrent submissions with the same key exactly one creates it
  (the other gets HTTP 409 and returns the winner's task). The task document is written first, so a claim
  never points at a missing task; the loser deletes its own, never-announced task document.

Lists (children, the reviewers' queues, the queued tasks a sweep re-sends) are queries over the record's
fields, served by the container's default indexing policy (every path indexed), which infrastructure keeps.

Infrastructure creates the container (data-plane RBAC cannot); the identity needs the *Cosmos DB Built-in
Data Contributor* role, as for the memory containers.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from agent_runtime.caller import DEFAULT_TENANT
from agent_runtime.cosmos_account import CosmosAccount
from agent_runtime.tasks.model import TaskConflict, TaskRecord

if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy

TASKS_PARTITION_KEY = "/id"
"""The tasks container's layout; infrastructure creates it to match."""


def idempotency_document_id(caller: str, key: str) -> str:
    """The deterministic id of the claim on (caller, key): hex only, so it is a valid Cosmos DB id."""
    return "idem-" + hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()


def _task_document(record: TaskRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "type": "task",
        "parentId": record.parent_id,
        "version": record.version,
        "record": record.model_dump(mode="json"),
    }


class CosmosTaskStore:
    """:class:`~agent_runtime.tasks.model.TaskStore` on a Cosmos DB container."""

    def __init__(self, account: CosmosAccount, container: ContainerProxy) -> None:
        self._account = account
        self._container = container

    @classmethod
    async def connect(
        cls, endpoint: str, database: str, *, container: str, client_id: str | None = None
    ) -> CosmosTaskStore:
        account = CosmosAccount.connect(endpoint, client_id)
        try:
            proxy, _ = await account.container(database, container, TASKS_PARTITION_KEY)
        except BaseException:
            await account.close()
            raise
        return cls(account, proxy)

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        from azure.cosmos.exceptions import CosmosResourceExistsError

        await self._container.create_item(_task_document(record))
        if record.idempotency_key is None:
            return record, True
        claim_id = idempotency_document_id(record.caller, record.idempotency_key)
        try:
            await self._container.create_item({"id": claim_id, "type": "idempotency", "taskId": record.id})
        except CosmosResourceExistsError:
            await self._container.delete_item(record.id, partition_key=record.id)
            claim = await self._container.read_item(claim_id, partition_key=claim_id)
            existing = await self.get(claim["taskId"])
            if existing is None:
                raise RuntimeError(
                    f"idempotency claim {claim_id} names missing task {claim['taskId']}"
                ) from None
            return existing, False
        return record, True

    async def get(self, task_id: str) -> TaskRecord | None:
        from azure.cosmos.exceptions import CosmosResourceNotFoundError

        try:
            document = await self._container.read_item(task_id, partition_key=task_id)
        except CosmosResourceNotFoundError:
            return None
        if document.get("type") != "task":
            return None
        return TaskRecord.model_validate(document["record"])

    async def replace(self, record: TaskRecord, *, expected_version: int) -> TaskRecord:
        from azure.core import MatchConditions
        from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceNotFoundError

        try:
            current = await self._container.read_item(record.id, partition_key=record.id)
        except CosmosResourceNotFoundError:
            raise TaskConflict(f"task {record.id} does not exist") from None
        if current.get("version") != expected_version:
            raise TaskConflict(f"task {record.id} changed since version {expected_version}")
        written = record.model_copy(update={"version": expected_version + 1})
        try:
            await self._container.replace_item(
                record.id,
                _task_document(written),
                etag=current["_etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except CosmosAccessConditionFailedError:
            raise TaskConflict(f"task {record.id} changed since version {expected_version}") from None
        return written

    async def children(self, parent_id: str) -> list[TaskRecord]:
        rows = self._container.query_items(
            "SELECT c.record FROM c WHERE c.type = 'task' AND c.parentId = @parent",
            parameters=[{"name": "@parent", "value": parent_id}],
        )
        records = [TaskRecord.model_validate(row["record"]) async for row in rows]
        return sorted(records, key=lambda record: (record.created_at, record.id))

    async def awaiting_approval(self, limit: int, *, tenant: str | None = None) -> list[TaskRecord]:
        # The tenant is matched in the query, so a tenant's queue is served from its own documents only.
        parameters: list[dict[str, Any]] = [{"name": "@limit", "value": limit}]
        of_tenant = ""
        if tenant is not None:
            parameters.append({"name": "@tenant", "value": tenant})
            # A task of a caller without a tenant stores none (null), and belongs to the default tenant.
            default = " OR NOT IS_STRING(c.record.tenant)" if tenant == DEFAULT_TENANT else ""
            of_tenant = f" AND (c.record.tenant = @tenant{default})"
        rows = self._container.query_items(
            "SELECT TOP @limit c.record FROM c WHERE c.type = 'task' AND c.record.state = 'awaiting_approval'"
            f"{of_tenant} ORDER BY c.record.created_at",
            parameters=parameters,
        )
        return [TaskRecord.model_validate(row["record"]) async for row in rows]

    async def queued_before(self, queue: str, before: float, limit: int) -> list[TaskRecord]:
        rows = self._container.query_items(
            "SELECT TOP @limit c.record FROM c WHERE c.type = 'task' AND c.record.state = 'queued' "
            "AND c.record.queue = @queue AND c.record.updated_at < @before ORDER BY c.record.updated_at",
            parameters=[
                {"name": "@limit", "value": limit},
                {"name": "@queue", "value": queue},
                {"name": "@before", "value": before},
            ],
        )
        return [TaskRecord.model_validate(row["record"]) async for row in rows]

    async def close(self) -> None:
        await self._account.close()
