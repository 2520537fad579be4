"""Task records in Redis (``state_backend=redis``): Azure Cache for Redis, ElastiCache, any Redis 6+.

Each task is a hash ``{record, version}``; the idempotency claim of (caller, key) is a string holding the
task id; a parent's children, and the tasks awaiting approval, are sorted sets scored by creation time. Create and compare-and-set are Lua
scripts, so each is one atomic step on the server whatever the number of API and worker replicas. Every
key carries the hash tag ``{agentstage-tasks}``: the scripts touch several keys, which Redis Cluster
allows only within one slot.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, cast

from agent_runtime.tasks.model import TaskConflict, TaskRecord, TaskState

if TYPE_CHECKING:
    from redis.asyncio import Redis

_TAG = "agentstage:{agentstage-tasks}"

# KEYS: task, claim (or ""), children (or ""); ARGV: id, record, version, created_at, task key prefix
# (the claimed task's key is only known inside the script; the shared hash tag keeps it in the same slot).
# Returns {1, record} when created, {0, existing record} when the claim names an earlier task.
_CREATE = """
if KEYS[2] ~= '' then
    local existing = redis.call('GET', KEYS[2])
    if existing then
        return {0, redis.call('HGET', ARGV[5] .. existing, 'record')}
    end
    redis.call('SET', KEYS[2], ARGV[1])
end
if redis.call('HSETNX', KEYS[1], 'record', ARGV[2]) == 0 then
    return redis.error_reply('task ' .. ARGV[1] .. ' exists')
end
redis.call('HSET', KEYS[1], 'version', ARGV[3])
if KEYS[3] ~= '' then
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
return {1, ARGV[2]}
"""

# KEYS: task, awaiting-approval index; ARGV: expected version, record, new version, id, awaiting ("1"
# or "0"), created_at. 1 when written, 0 on a conflict.
_REPLACE = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then
    return 0
end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'version', ARGV[3])
if ARGV[5] == '1' then
    redis.call('ZADD', KEYS[2], ARGV[6], ARGV[4])
else
    redis.call('ZREM', KEYS[2], ARGV[4])
end
return 1
"""
_AWAITING = f"{_TAG}:awaiting-approval"


def _task_key(task_id: str) -> str:
    return f"{_TAG}:task:{task_id}"


def _claim_key(caller: str, key: str) -> str:
    return f"{_TAG}:claim:" + hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()


def _children_key(parent_id: str) -> str:
    return f"{_TAG}:children:{parent_id}"


class RedisTaskStore:
    """:class:`~agent_runtime.tasks.model.TaskStore` on Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)
        self._replace = redis.register_script(_REPLACE)

    @classmethod
    async def connect(cls, url: str) -> RedisTaskStore:
        """Connected and answering: fail at startup, not on the first task."""
        from redis.asyncio import Redis  # lazy: only deployments that use Redis pay for the import

        redis = Redis.from_url(url)
        try:
            await redis.ping()
        except BaseException:
            await redis.aclose()
            raise
        return cls(redis)

    async def create(self, record: TaskRecord) -> tuple[TaskRecord, bool]:
        claim = _claim_key(record.caller, record.idempotency_key) if record.idempotency_key else ""
        children = _children_key(record.parent_id) if record.parent_id else ""
        created, stored = await self._create(
            keys=[_task_key(record.id), claim, children],
            args=[record.id, record.model_dump_json(), record.version, record.created_at, f"{_TAG}:task:"],
        )
        return TaskRecord.model_validate_json(stored), bool(created)

    async def get(self, task_id: str) -> TaskRecord | None:
        stored = await self._redis.hget(_task_key(task_id), "record")  # type: ignore[misc]
        return TaskRecord.model_validate_json(stored) if stored is not None else None

    async def replace(self, record: TaskRecord, *, expected_version: int) -> TaskRecord:
        written = record.model_copy(update={"version": expected_version + 1})
        awaiting = "1" if written.state is TaskState.AWAITING_APPROVAL else "0"
        done = await self._replace(
            keys=[_task_key(record.id), _AWAITING],
            args=[
                expected_version,
                written.model_dump_json(),
                written.version,
                record.id,
                awaiting,
                record.created_at,
            ],
        )

        if not done:
            raise TaskConflict(f"task {record.id} changed since version {expected_version}")
        return written

    async def children(self, parent_id: str) -> list[TaskRecord]:
        ids = cast(list[bytes], await self._redis.zrange(_children_key(parent_id), 0, -1))
        records = [await self.get(task_id.decode()) for task_id in ids]
        return [record for record in records if record is not None]

    async def awaiting_approval(self, limit: int) -> list[TaskRecord]:
        ids = cast(list[bytes], await self._redis.zrange(_AWAITING, 0, limit - 1))
        records = [await self.get(task_id.decode()) for task_id in ids]
        return [record for record in records if record is not None]

    async def close(self) -> None:
        await self._redis.aclose()
