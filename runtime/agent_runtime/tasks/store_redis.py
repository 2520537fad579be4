"""Task records in Redis (``state_backend=redis``): Azure Cache for Redis, ElastiCache, any Redis 6+.

Each task is a hash ``{record, version}``; the idempotency claim of (caller, key) is a string holding the
task id; a parent's children are a sorted set scored by creation time. Create and compare-and-set are Lua
scripts, so each is one atomic step on the server whatever the number of API and worker replicas. Every
key carries the hash tag ``{agentstage-tasks}``: the scripts touch several keys, which Redis Cluster
allows only within one slot.

The reviewers' queues are sorted sets of the parked tasks' ids, scored by creation time: every tenant's
(``review-queue``, which the platform's reviewers read) and one per tenant (``review-queue:<tenant>``), so
a tenant's reviewers read their own tenant's tasks only. The compare-and-set script files a task in or out
of both with the write. Runtimes before them kept one set of every tenant's parked tasks
(``awaiting-approval``), now written by those runtimes only: a reader first files what it lists in the
queues (reading those records once, whatever their tenant; one read of an empty set once none are left)
and empties it, so a task parked before an upgrade, or by an older replica during one, still reaches its
tenant's reviewers.

The queued tasks of each queue are a sorted set too (``queued:<queue>``), scored by the record's last write,
for the sweep that re-sends the message of a task queued long ago (:meth:`RedisTaskStore.queued_before`);
the scripts file a task in or out of it with every write. Runtimes before it did not, so a task an older
runtime queued is not listed, and one it took out of ``queued`` stays listed until a sweep reads its record
and files it out.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, cast

from agent_runtime.tasks.model import TaskConflict, TaskRecord, TaskState, tenant_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

_TAG = "agentstage:{agentstage-tasks}"

# KEYS: task, claim (or ""), children (or ""), its queue's queued tasks (or "": not queued); ARGV: id,
# record, version, created_at, task key prefix (the claimed task's key is only known inside the script; the
# shared hash tag keeps it in the same slot), updated_at.
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
if KEYS[4] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
end
return {1, ARGV[2]}
"""

# The last five ARGV: id, parked ("1" or "0"), created_at, queued ("1" or "0"), updated_at. Files the task
# in (or out of) every tenant's queue (KEYS[3]) and its tenant's (KEYS[4]), out of the older runtimes' set
# (KEYS[2]), and in (or out of) its queue's queued tasks (KEYS[5]).
_FILE = """
local id, parked, created_at = ARGV[#ARGV - 4], ARGV[#ARGV - 3], ARGV[#ARGV - 2]
local queued, updated_at = ARGV[#ARGV - 1], ARGV[#ARGV]
redis.call('ZREM', KEYS[2], id)
if parked == '1' then
    redis.call('ZADD', KEYS[3], created_at, id)
    redis.call('ZADD', KEYS[4], created_at, id)
else
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
end
if queued == '1' then
    redis.call('ZADD', KEYS[5], updated_at, id)
else
    redis.call('ZREM', KEYS[5], id)
end
return 1
"""

# KEYS: task, older runtimes' set, every tenant's queue, the task's tenant's queue, its queue's queued tasks;
# ARGV: expected version, record, new version, then as _FILE. 1 when written, 0 on a conflict.
_REPLACE = (
    """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then
    return 0
end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'version', ARGV[3])
"""
    + _FILE
)

# KEYS: as _REPLACE; ARGV: the version read, then as _FILE. Files the task as the record read says, if it
# is still that version (1); else 0: it changed since (this runtime's writer filed it; what an older one
# left is filed by a later read).
_REFILE = (
    """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then
    return 0
end
"""
    + _FILE
)
_OLDER_SET = f"{_TAG}:awaiting-approval"
_EVERY_TENANT = f"{_TAG}:review-queue"


def _task_key(task_id: str) -> str:
    return f"{_TAG}:task:{task_id}"


def _claim_key(caller: str, key: str) -> str:
    return f"{_TAG}:claim:" + hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()


def _children_key(parent_id: str) -> str:
    return f"{_TAG}:children:{parent_id}"


def _tenant_queue(tenant: str) -> str:
    return f"{_EVERY_TENANT}:{tenant}"


def _queued_key(queue: str) -> str:
    return f"{_TAG}:queued:{queue}"


def _queues(record: TaskRecord) -> list[str]:
    """The keys ``_FILE`` files ``record`` in, after its task's own."""
    return [_OLDER_SET, _EVERY_TENANT, _tenant_queue(tenant_of(record)), _queued_key(record.queue)]


def _filing(record: TaskRecord) -> list[object]:
    """``_FILE``'s arguments for ``record``."""
    return [
        record.id,
        "1" if record.state is TaskState.AWAITING_APPROVAL else "0",
        record.created_at,
        "1" if record.state is TaskState.QUEUED else "0",
        record.updated_at,
    ]


class RedisTaskStore:
    """:class:`~agent_runtime.tasks.model.TaskStore` on Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)
        self._replace = redis.register_script(_REPLACE)
        self._refile = redis.register_script(_REFILE)

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
        queued = _queued_key(record.queue) if record.state is TaskState.QUEUED else ""
        created, stored = await self._create(
            keys=[_task_key(record.id), claim, children, queued],
            args=[
                record.id,
                record.model_dump_json(),
                record.version,
                record.created_at,
                f"{_TAG}:task:",
                record.updated_at,
            ],
        )
        return TaskRecord.model_validate_json(stored), bool(created)

    async def get(self, task_id: str) -> TaskRecord | None:
        stored = await self._redis.hget(_task_key(task_id), "record")  # type: ignore[misc]
        return TaskRecord.model_validate_json(stored) if stored is not None else None

    async def replace(self, record: TaskRecord, *, expected_version: int) -> TaskRecord:
        written = record.model_copy(update={"version": expected_version + 1})
        done = await self._replace(
            keys=[_task_key(record.id), *_queues(written)],
            args=[expected_version, written.model_dump_json(), written.version, *_filing(written)],
        )
        if not done:
            raise TaskConflict(f"task {record.id} changed since version {expected_version}")
        return written

    async def children(self, parent_id: str) -> list[TaskRecord]:
        ids = cast(list[bytes], await self._redis.zrange(_children_key(parent_id), 0, -1))
        records = [await self.get(task_id.decode()) for task_id in ids]
        return [record for record in records if record is not None]

    async def awaiting_approval(self, limit: int, *, tenant: str | None = None) -> list[TaskRecord]:
        if limit <= 0:
            return []
        await self._file_older_set()
        return await self._parked(_EVERY_TENANT if tenant is None else _tenant_queue(tenant), limit)

    async def _parked(self, queue: str, limit: int) -> list[TaskRecord]:
        """The first ``limit`` tasks of ``queue`` that are parked. The script keeps a queue exact, but a
        replica of an older runtime that decides a task leaves it listed: such an entry is read past (the
        window grows by the entries read past) and then filed out, so it is read past once."""
        read: dict[str, TaskRecord | None] = {}
        window = limit
        while True:
            ids = [
                task_id.decode()
                for task_id in cast(list[bytes], await self._redis.zrange(queue, 0, window - 1))
            ]
            for task_id in ids:
                if task_id not in read:
                    read[task_id] = await self.get(task_id)
            parked = [
                record
                for record in map(read.__getitem__, ids)
                if record is not None and record.state is TaskState.AWAITING_APPROVAL
            ]
            if len(parked) >= limit or len(ids) < window:
                break
            window = limit + len(ids) - len(parked)
        for task_id, record in read.items():
            if record is None:
                await self._redis.zrem(queue, task_id)
            elif record.state is not TaskState.AWAITING_APPROVAL:
                await self._file(record)
        return parked[:limit]

    async def queued_before(self, queue: str, before: float, limit: int) -> list[TaskRecord]:
        """The set's first ``limit`` entries scored before ``before``, whose records are read: an entry an
        older runtime left listed (or scored by an older write) is filed as its record says, so it is read
        past once."""
        key = _queued_key(queue)
        ids = cast(list[bytes], await self._redis.zrangebyscore(key, "-inf", f"({before!r}", 0, limit))
        found = []
        for task_id in ids:
            record = await self.get(task_id.decode())
            if record is None:
                await self._redis.zrem(key, task_id)
            elif record.state is TaskState.QUEUED and record.updated_at < before:
                found.append(record)
            else:
                await self._file(record)
        return found

    async def _file_older_set(self) -> None:
        """File the tasks an older runtime listed in its set of every tenant's parked tasks in the queues,
        emptying it (see the module docstring)."""
        for task_id in cast(list[bytes], await self._redis.zrange(_OLDER_SET, 0, -1)):
            record = await self.get(task_id.decode())
            if record is None:
                await self._redis.zrem(_OLDER_SET, task_id)
            else:
                await self._file(record)

    async def _file(self, record: TaskRecord) -> None:
        """File ``record``'s task in or out of the queues as ``record`` says, unless it changed since it
        was read (then its writer filed it, or a later read does)."""
        await self._refile(
            keys=[_task_key(record.id), *_queues(record)], args=[record.version, *_filing(record)]
        )

    async def close(self) -> None:
        await self._redis.aclose()
