"""Amazon DynamoDB backends (boto3): ``state_backend=dynamodb`` and ``vector_backend=dynamodb`` on AWS stages.

Client
    boto3 is synchronous, so every call runs on a thread of the store's own pool (:data:`MAX_WORKERS`
    threads, as many pooled HTTP connections) and the event loop never waits on the network. Each store
    owns one client. Credentials come from the SDK's default chain (the Lambda, ECS task or EKS pod role;
    environment variables on a laptop), the region from ``aws_region`` or ``AWS_REGION``, and an endpoint
    override (moto, DynamoDB Local) from the SDK's own ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL``.
    botocore retries throttling, 5xx and network errors in its *adaptive* mode (3 attempts, with its
    client-side rate limiter backing off while DynamoDB throttles); write conflicts between writers are
    retried by the stores themselves, which know whether a write may be repeated. Throttling that outlasts
    those retries, and an unreachable endpoint, are :class:`~agent_runtime.errors.Unavailable` (503).

    The infrastructure creates the tables; the runtime may not. At startup each store checks its table with
    ``DescribeTable`` and refuses a missing one, or one with another key schema, with a
    :class:`~agent_runtime.errors.ConfigurationError`. IAM, per table: ``dynamodb:DescribeTable``,
    ``GetItem``, ``BatchGetItem``, ``Query``, ``PutItem``, ``UpdateItem``, ``DeleteItem``,
    ``BatchWriteItem``, ``ConditionCheckItem`` (transactions are authorised per item action). Every key
    attribute is a string; on-demand billing (``PAY_PER_REQUEST``) is assumed, as the traffic is bursty.

Conversations table (``dynamodb_conversations_table``)
    Partition key ``pk`` (S), sort key ``sk`` (S). No secondary index, no TTL. Every read is strongly
    consistent, so a replica sees another's write at once. Items (digests are the first 32 hex digits of
    SHA-256 over the JSON list of the parts, so any id is safe in a key and the keys name nobody):

    - head: ``pk = "c#<digest(tenant, caller, conversation id)>"``, ``sk = "head"``; ``tenant``,
      ``caller``, ``conversation_id`` (S), ``messages`` (N, the count and the next sequence number),
      ``created_at``, ``updated_at`` (N, epoch seconds), ``index_sk`` (S, its owner-index entry).
    - message: same ``pk``, ``sk = "m#<seq, 12 digits>#<part, 3 digits>"``; ``json`` (S, the message as
      JSON) or, for a message over :data:`PART_BYTES`, its zlib-compressed JSON cut into parts, ``zlib`` (B)
      and ``parts`` (N) on each.
    - owner index: ``pk = "o#<digest(tenant, caller)>"``, ``sk = "<updated_at as %017.6f>#<conversation
      digest>"``; ``conversation_id``, ``created_at``, ``updated_at``, ``messages``: an owner's
      conversations, most recently changed last, one strongly consistent ``Query`` away.
    - tenant's owners: ``pk = "t#<digest(tenant)>"``, ``sk = "<digest(tenant, caller)>"``; ``tenant``,
      ``caller`` (S), ``conversations`` (N): how a tenant's erasure finds every caller of it.

    An append reads the head and writes, in one ``TransactWriteItems``, the head conditioned on the
    ``messages`` count it read, the owner-index entry (the old one deleted), the tenant's owner entry (for
    a new conversation) and the messages. Two appends can never interleave or reuse a sequence number:
    the loser's condition fails and it reads again. Appends in one process queue per conversation, so a
    process never races itself. A transaction holds at most 100 items and 4 MB, so an append of more than
    :data:`APPEND_BATCH` messages (or several MB) is split, each part atomic; a single message may be at most
    :data:`MAX_MESSAGE_BYTES` once compressed. A delete removes the messages first and then the head with
    its index entry, conditioned on the count it read, so a concurrent append is never half-deleted.

Memories table (``dynamodb_memories_table``)
    Partition key ``pk`` (S), sort key ``sk`` (S). No secondary index, no TTL. Items:

    - vector: ``pk = "v#<digest(namespace)>"``, ``sk = "i#<sha256(item id)>"``; ``namespace``, ``id``,
      ``text``, ``metadata`` (S, JSON), ``embedding`` (B, little-endian float32).
    - revision: same ``pk``, ``sk = "rev"``; ``revision`` (S), a random token rewritten in the same
      transaction as every change of the namespace.

    DynamoDB has no vector index. A query reads the namespace's revision and, when it differs from the
    cached snapshot's, every vector of the namespace (a strongly consistent ``Query``, 1 MB pages), then
    ranks them in numpy by exact cosine similarity (:mod:`.scoring`). That is exact and cheap while a
    namespace is small and read more often than written, and **it is for pilot scale**: about 10,000
    vectors of 384 dimensions (~20 MB, ~5,000 read units and ~0.5 s per reload after a change) per
    namespace. Beyond that, or with frequent writes, use PostgreSQL + pgvector (``vector_backend=postgres``).
    A vector item holds at most 400 KB (its text included).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from agent_runtime.errors import ConfigurationError, Unavailable
from agent_runtime.settings_contract import env_name

from .base import Conversation, HistoryPage, Message, Owner, VectorHit, VectorItem
from .common import (
    CloseOnce,
    InvalidCursor,
    check_count,
    check_embedding,
    check_id,
    check_items,
    check_messages,
    check_owner,
    check_where,
    conversation_key,
    dump_json,
    page_span,
)
from .scoring import Document, Snapshot, SnapshotCache, pack_embedding

Item = dict[str, Any]
"""An item in DynamoDB's wire format: ``{"name": {"S": "value"}, ...}``."""

MAX_WORKERS = 32
"""Threads (and pooled connections) per store: the DynamoDB calls one store may have in flight."""
TRANSACTION_ITEMS = 100
"""Items one ``TransactWriteItems`` may hold (service limit)."""
TRANSACTION_BYTES = 3_500_000
"""What one transaction may carry here: DynamoDB's limit is 4 MB, the rest is left for keys and overhead."""
ITEM_BYTES = 390_000
"""What one item may carry here: DynamoDB's limit is 400 KB, attribute names and keys included."""
PART_BYTES = 350_000
"""A message whose JSON is larger is compressed and stored in parts of at most this many bytes."""
MAX_MESSAGE_BYTES = TRANSACTION_BYTES - 100_000
"""The largest message (compressed) an append takes: all its parts must fit in one transaction."""
APPEND_BATCH = TRANSACTION_ITEMS - 4
"""Message items per append transaction: the rest hold the head and the index entries."""
CONTENTION_SECONDS = 30.0
"""How long a write keeps retrying races lost to other writers before it gives up (503)."""

_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
RETRYABLE_REASONS = {"TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError"}
"""Cancellation reasons of a transaction that may succeed when repeated as it was."""


# -- the client and the tables' shapes (shared with the task store and the ledger) --------------------------


@dataclass(frozen=True)
class TableSchema:
    """The key schema a store needs: what the infrastructure creates and what startup checks."""

    partition_key: str = "pk"
    sort_key: str | None = "sk"
    indexes: tuple[tuple[str, tuple[str, str], tuple[str, str]], ...] = ()
    """Global secondary indexes: (name, (partition attribute, type), (sort attribute, type))."""

    def describe(self) -> str:
        keys = f"partition key {self.partition_key} (S)"
        if self.sort_key:
            keys += f", sort key {self.sort_key} (S)"
        for name, (hash_key, hash_type), (range_key, range_type) in self.indexes:
            keys += (
                f", global secondary index {name} on {hash_key} ({hash_type}) / {range_key} ({range_type})"
            )
        return keys

    def problems(self, table: dict[str, Any]) -> list[str]:
        """How the described table differs from this schema (nothing: it fits)."""
        types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
        found = _key_schema(table.get("KeySchema", []))
        wanted = {"HASH": self.partition_key, **({"RANGE": self.sort_key} if self.sort_key else {})}
        problems = []
        if found != wanted or any(types.get(name) != "S" for name in wanted.values()):
            problems.append(f"its keys are {found} ({types}), not {wanted} (all S)")
        indexes = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
        for name, (hash_key, hash_type), (range_key, range_type) in self.indexes:
            index = indexes.get(name)
            keys = _key_schema(index["KeySchema"]) if index else None
            if keys != {"HASH": hash_key, "RANGE": range_key} or (
                types.get(hash_key),
                types.get(range_key),
            ) != (hash_type, range_type):
                problems.append(f"it has no global secondary index {name} on {hash_key} / {range_key}")
        return problems


def _key_schema(elements: list[dict[str, str]]) -> dict[str, str]:
    return {element["KeyType"]: element["AttributeName"] for element in elements}


class DynamoDBClient:
    """One boto3 DynamoDB client (thread-safe) and the thread pool its calls run on; one per store."""

    def __init__(self, client: Any, *, max_workers: int = MAX_WORKERS) -> None:
        self.client = client
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="agentstage-dynamodb")
        self._closed = False
        self.close = CloseOnce(self._release)

    @classmethod
    async def connect(cls, region: str | None = None, *, max_workers: int = MAX_WORKERS) -> DynamoDBClient:
        """A client from the environment's credentials and region (``region`` overrides the latter)."""
        config = Config(
            retries={"mode": "adaptive", "max_attempts": 3},
            max_pool_connections=max_workers,
            connect_timeout=5,
            read_timeout=20,
            tcp_keepalive=True,
        )

        # botocore itself reads AWS_DEFAULT_REGION (and its config file); Lambda, ECS and EKS set AWS_REGION.
        region = region or os.environ.get("AWS_REGION") or None

        def create() -> Any:  # a session of its own: the default session is not thread-safe
            return boto3.session.Session().client("dynamodb", region_name=region, config=config)

        try:
            client = await asyncio.get_running_loop().run_in_executor(None, create)
        except NoRegionError as error:
            variable = env_name("aws_region")
            raise ConfigurationError(
                f"DynamoDB needs a region: set {variable} (or AWS_REGION)", field=variable
            ) from error
        return cls(client, max_workers=max_workers)

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """``client.<operation>(**params)`` on the pool; unreachable or throttled is :class:`Unavailable`."""
        if self._closed:
            raise RuntimeError("the DynamoDB store is closed")
        method = partial(getattr(self.client, operation), **params)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, method)
        except _UNREACHABLE as error:
            raise Unavailable(f"DynamoDB cannot be reached: {error}") from error
        except NoCredentialsError as error:
            raise ConfigurationError(
                "no AWS credentials: give the runtime a role (or set AWS_* variables)"
            ) from error
        except ClientError as error:
            if error_code(error) in _THROTTLED:
                raise Unavailable(f"DynamoDB is throttling {operation}: {error}") from error
            raise

    @classmethod
    async def for_table(cls, table: str, schema: TableSchema, region: str | None = None) -> DynamoDBClient:
        """A client whose ``table`` was checked against ``schema``; closed again when the check fails."""
        client = await cls.connect(region)
        try:
            await client.check_table(table, schema)
        except BaseException:
            await client.close()
            raise
        return client

    async def check_table(self, table: str, schema: TableSchema) -> None:
        """:class:`ConfigurationError` unless ``table`` exists with ``schema``'s keys (and indexes)."""
        try:
            description = (await self.call("describe_table", TableName=table))["Table"]
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"DynamoDB table {table!r} does not exist in region {self.client.meta.region_name}: create "
                    f"it with the infrastructure ({schema.describe()}); the runtime may not create tables"
                ) from error
            if error_code(error) in ("AccessDeniedException", "UnrecognizedClientException"):
                raise ConfigurationError(
                    f"the runtime's AWS identity may not describe DynamoDB table {table!r} "
                    f"(dynamodb:DescribeTable): {error}"
                ) from error
            raise
        problems = schema.problems(description)
        if problems:
            raise ConfigurationError(
                f"DynamoDB table {table!r} does not have the layout this runtime needs: {'; '.join(problems)}. "
                f"Recreate it with {schema.describe()}"
            )

    async def query_all(self, **params: Any) -> AsyncIterator[Item]:
        """Every item a ``Query`` matches, page after page."""
        while True:
            page = await self.call("query", **params)
            for item in page.get("Items", []):
                yield item
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def get_many(
        self, table: str, keys: list[Item], projection: dict[str, Any] | None = None
    ) -> list[Item]:
        """The items of ``keys`` that exist (strongly consistent ``BatchGetItem``), in no particular order."""
        found: list[Item] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                "Keys": keys[start : start + 100],
                "ConsistentRead": True,
                **(projection or {}),
            }
            attempt = 0
            while request["Keys"]:
                reply = await self.call("batch_get_item", RequestItems={table: request})
                found += reply.get("Responses", {}).get(table, [])
                request["Keys"] = reply.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
                if request["Keys"]:
                    await backoff(attempt)
                    attempt += 1
        return found

    async def delete_many(self, table: str, keys: list[Item]) -> None:
        """Delete ``keys`` (``BatchWriteItem``, 25 at a time, unprocessed ones again)."""
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
            attempt = 0
            while requests:
                reply = await self.call("batch_write_item", RequestItems={table: requests})
                requests = reply.get("UnprocessedItems", {}).get(table, [])
                if requests:
                    await backoff(attempt)
                    attempt += 1

    async def _release(self) -> None:
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, partial(self._executor.shutdown, wait=True))
        self.client.close()


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def cancellation_codes(error: ClientError) -> list[str]:
    """Each item's reason a transaction was cancelled (``"None"``: that item was fine)."""
    return [str(reason.get("Code", "None")) for reason in error.response.get("CancellationReasons") or []]


async def backoff(attempt: int, first: float = 0.005, longest: float = 0.25) -> None:
    """Full-jitter exponential backoff before the next attempt of a write that lost a race."""
    await asyncio.sleep(random.uniform(0, min(longest, first * 2**attempt)))


class Contention:
    """Paces the retries of one write that keeps losing races; :class:`Unavailable` after ``seconds``."""

    def __init__(self, what: str, seconds: float = CONTENTION_SECONDS) -> None:
        self._what = what
        self._deadline = time.monotonic() + seconds
        self._seconds = seconds
        self._attempt = 0

    async def lost(self) -> None:
        if time.monotonic() > self._deadline:
            raise Unavailable(
                f"{self._what}: every write for {self._seconds:g} s lost a race to other writers"
            )
        await backoff(self._attempt)
        self._attempt += 1


class KeyLocks:
    """Mutual exclusion per key within one process, so that a process queues its own writes to one item
    instead of racing itself (every lost race costs a round trip and write units). Several keys are taken
    in sorted order, so two holders can never wait on each other."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        entries = []
        for key in sorted(set(keys)):
            entry = self._locks.setdefault(key, (asyncio.Lock(), [0]))
            entry[1][0] += 1
            entries.append((key, entry))
        acquired: list[asyncio.Lock] = []
        try:
            for _, (lock, _) in entries:
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for key, (_, users) in entries:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: float) -> dict[str, str]:
    """A DynamoDB number; floats without exponent notation."""
    if isinstance(value, int):
        return {"N": str(value)}
    text = repr(float(value))
    return {"N": text if "e" not in text else f"{value:f}"}


def b(value: bytes) -> dict[str, bytes]:
    return {"B": value}


def digest(*parts: str) -> str:
    """128 bits of SHA-256 over the parts as a JSON list: unambiguous whatever characters they hold."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def pack_text(text: str, attribute: str) -> Item:
    """``text`` as attribute ``attribute`` (S), or zlib-compressed as ``<attribute>_zlib`` (B) when it is
    large; :class:`ValueError` when even that cannot fit in one item."""
    encoded = text.encode()
    if len(encoded) <= PART_BYTES:
        return {attribute: s(text)}
    packed = zlib.compress(encoded, 6)
    if len(packed) > ITEM_BYTES - 10_000:
        raise ValueError(
            f"{attribute} is {len(encoded)} bytes ({len(packed)} compressed): a DynamoDB item holds at most 400 KB"
        )
    return {f"{attribute}_zlib": b(packed)}


def unpack_text(item: Item, attribute: str) -> str:
    if attribute in item:
        return str(item[attribute]["S"])
    return zlib.decompress(item[f"{attribute}_zlib"]["B"]).decode()


# -- conversations -----------------------------------------------------------------------------------------

CONVERSATIONS_SCHEMA = TableSchema()
"""The conversations table: ``pk`` (S) / ``sk`` (S), nothing else (see the module docstring)."""
MEMORIES_SCHEMA = TableSchema()
"""The memories table: ``pk`` (S) / ``sk`` (S), nothing else (see the module docstring)."""
_HEAD = "head"
_INDEX_SK = re.compile(r"[0-9]{10,}\.[0-9]{6}#[0-9a-f]{32}")
"""An owner-index entry's sort key (``<updated_at as %017.6f>#<conversation digest>``): a listing's cursor."""
_APPEND_ATTEMPTS = 50


@dataclass(frozen=True)
class _Head:
    messages: int
    created_at: float
    updated_at: float
    index_sk: str

    @classmethod
    def of(cls, item: Item | None) -> _Head | None:
        if item is None:
            return None
        return cls(
            int(item["messages"]["N"]),
            float(item["created_at"]["N"]),
            float(item["updated_at"]["N"]),
            item["index_sk"]["S"],
        )


def _message_sk(seq: int, part: int) -> str:
    return f"m#{seq:012d}#{part:03d}"


_LAST_PART = 999
"""The highest part number the sort key's three digits hold: every part of message ``seq`` sorts at or before
``_message_sk(seq, _LAST_PART)``."""


def _encode_message(index: int, message: Message) -> list[Item]:
    """A message's items without keys: one ``json`` item, or compressed parts of a large message."""
    text = dump_json(message)
    encoded = text.encode()
    if len(encoded) <= PART_BYTES:
        return [{"json": s(text)}]
    packed = zlib.compress(encoded, 6)
    if len(packed) > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"message {index} is {len(encoded)} bytes ({len(packed)} compressed): DynamoDB takes at most "
            f"{MAX_MESSAGE_BYTES} compressed bytes per message"
        )
    parts = [packed[start : start + PART_BYTES] for start in range(0, len(packed), PART_BYTES)]
    return [{"zlib": b(part), "parts": n(len(parts))} for part in parts]


def _batches(encoded: list[list[Item]]) -> list[list[list[Item]]]:
    """Messages grouped so that each group's items fit one transaction beside the head and the index."""
    batches: list[list[list[Item]]] = []
    items = size = 0
    for message in encoded:
        weight = sum(_size(part) for part in message)
        if batches and items + len(message) <= APPEND_BATCH and size + weight <= MAX_MESSAGE_BYTES:
            batches[-1].append(message)
            items, size = items + len(message), size + weight
        else:
            batches.append([message])
            items, size = len(message), weight
    return batches


def _size(part: Item) -> int:
    if "json" in part:
        return len(part["json"]["S"].encode()) + 64
    return len(part["zlib"]["B"]) + 64


def _decode_messages(items: list[Item]) -> list[Message]:
    """Messages from their items in ascending ``sk`` order (parts of one message are adjacent)."""
    messages: list[Message] = []
    pending: list[bytes] = []
    for item in items:
        if "json" in item:
            messages.append(json.loads(item["json"]["S"]))
            continue
        pending.append(item["zlib"]["B"])
        if len(pending) == int(item["parts"]["N"]):
            messages.append(json.loads(zlib.decompress(b"".join(pending))))
            pending = []
    return messages


class DynamoDBConversationStore:
    """Conversations in one DynamoDB table, keyed by owner and id (layout in the module docstring)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table
        self._locks = KeyLocks()

    @classmethod
    async def connect(cls, table: str, *, region: str | None = None) -> DynamoDBConversationStore:
        client = await DynamoDBClient.for_table(table, CONVERSATIONS_SCHEMA, region)
        return cls(client, table)

    def _key(self, pk: str, sk: str) -> Item:
        return {"pk": s(pk), "sk": s(sk)}

    async def append(self, owner: Owner, conversation_id: str, messages: Sequence[Message]) -> None:
        tenant, caller, conversation_id = conversation_key(owner, conversation_id)
        encoded = [_encode_message(i, message) for i, message in enumerate(check_messages(messages))]
        if not encoded:
            return
        conversation = "c#" + digest(tenant, caller, conversation_id)
        async with self._locks.hold([conversation]):
            for batch in _batches(encoded):
                await self._append_batch(owner, conversation_id, conversation, batch)

    async def _append_batch(
        self, owner: Owner, conversation_id: str, conversation: str, batch: list[list[Item]]
    ) -> None:
        owner_key = "o#" + digest(owner.tenant, owner.caller)
        contention = Contention(f"appending to conversation {conversation_id!r}")
        for _ in range(_APPEND_ATTEMPTS):
            head = _Head.of(await self._get(conversation, _HEAD))
            now = time.time()
            first = head.messages if head else 0
            count = first + len(batch)
            created = head.created_at if head else now
            updated = max(head.updated_at, now) if head else now
            index_sk = f"{updated:017.6f}#{conversation[2:]}"
            new_head = {
                **self._key(conversation, _HEAD),
                "tenant": s(owner.tenant),
                "caller": s(owner.caller),
                "conversation_id": s(conversation_id),
                "messages": n(count),
                "created_at": n(created),
                "updated_at": n(updated),
                "index_sk": s(index_sk),
            }
            put_head: dict[str, Any] = {"TableName": self._table, "Item": new_head}
            if head:
                put_head["ConditionExpression"] = "#messages = :read"
                put_head["ExpressionAttributeNames"] = {"#messages": "messages"}
                put_head["ExpressionAttributeValues"] = {":read": n(head.messages)}
            else:
                put_head["ConditionExpression"] = "attribute_not_exists(pk)"
            operations: list[dict[str, Any]] = [{"Put": put_head}]
            if head and head.index_sk != index_sk:
                operations.append(
                    {"Delete": {"TableName": self._table, "Key": self._key(owner_key, head.index_sk)}}
                )
            entry = {
                **self._key(owner_key, index_sk),
                "conversation_id": s(conversation_id),
                "created_at": n(created),
                "updated_at": n(updated),
                "messages": n(count),
            }
            operations.append({"Put": {"TableName": self._table, "Item": entry}})
            if not head:
                operations.append(self._count_owner(owner, +1))
            for seq, parts in enumerate(batch, start=first):
                for part, attributes in enumerate(parts):
                    item = {**self._key(conversation, _message_sk(seq, part)), **attributes}
                    operations.append({"Put": {"TableName": self._table, "Item": item}})
            try:
                await self._client.call(
                    "transact_write_items", TransactItems=operations, ClientRequestToken=uuid.uuid4().hex
                )
                return
            except ClientError as error:
                codes = cancellation_codes(error)
                if codes[0] == "ConditionalCheckFailed":  # another writer appended first: read again
                    await backoff(0)
                    continue
                if not any(code in RETRYABLE_REASONS for code in codes):
                    raise
            await contention.lost()
        raise Unavailable(
            f"could not append to conversation {conversation_id!r}: {_APPEND_ATTEMPTS} attempts lost to "
            "concurrent writers"
        )

    def _count_owner(self, owner: Owner, step: int) -> dict[str, Any]:
        """Count one more (or one fewer) conversation on the owner's entry under its tenant."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._key("t#" + digest(owner.tenant), digest(owner.tenant, owner.caller)),
                "UpdateExpression": "SET #tenant = :tenant, #caller = :caller ADD #conversations :step",
                "ExpressionAttributeNames": {
                    "#tenant": "tenant",
                    "#caller": "caller",
                    "#conversations": "conversations",
                },
                "ExpressionAttributeValues": {
                    ":tenant": s(owner.tenant),
                    ":caller": s(owner.caller),
                    ":step": n(step),
                },
            }
        }

    async def _get(self, pk: str, sk: str) -> Item | None:
        reply = await self._client.call(
            "get_item", TableName=self._table, Key=self._key(pk, sk), ConsistentRead=True
        )
        return reply.get("Item")

    async def page(
        self, owner: Owner, conversation_id: str, limit: int, before: int | None = None
    ) -> HistoryPage:
        conversation = "c#" + digest(*conversation_key(owner, conversation_id))
        # Two reads, one consistent page: the positions below the length read first never change.
        head = _Head.of(await self._get(conversation, _HEAD))
        length = head.messages if head else 0
        span = page_span(length, limit, before)
        if not span:
            return HistoryPage(span.start, [], length)
        items = self._client.query_all(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":pk": s(conversation),
                ":first": s(_message_sk(span.start, 0)),
                ":last": s(_message_sk(span.stop - 1, _LAST_PART)),
            },
            ConsistentRead=True,
        )
        return HistoryPage(span.start, _decode_messages([item async for item in items]), length)

    async def history(self, owner: Owner, conversation_id: str, limit: int | None = None) -> list[Message]:
        tenant, caller, conversation_id = conversation_key(owner, conversation_id)
        limit = check_count(limit, "limit", optional=True)
        if limit == 0:
            return []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :messages)",
            "ExpressionAttributeValues": {
                ":pk": s("c#" + digest(tenant, caller, conversation_id)),
                ":messages": s("m#"),
            },
            "ConsistentRead": True,
        }
        if limit is None:
            return _decode_messages([item async for item in self._client.query_all(**query)])
        # Newest first, until ``limit`` messages are complete (a large message's parts come last part first).
        newest: list[Item] = []
        complete = 0
        async for item in self._client.query_all(**query, ScanIndexForward=False, Limit=limit + 1):
            if complete == limit:
                break
            newest.append(item)
            if item["sk"]["S"].endswith("#000"):
                complete += 1
        return _decode_messages(newest[::-1])

    async def conversations(
        self, owner: Owner, limit: int = 100, after: str | None = None
    ) -> list[Conversation]:
        check_owner(owner)
        limit = check_count(limit, "limit")
        found: list[Conversation] = []
        if limit == 0:
            return found
        condition, values = "pk = :pk", {":pk": s("o#" + digest(owner.tenant, owner.caller))}
        if after is not None:  # the cursor is the owner-index entry's sort key: a walk is a range of it
            if not _INDEX_SK.fullmatch(after):
                raise InvalidCursor(after)
            condition, values[":after"] = condition + " AND sk < :after", s(after)
        query = self._client.query_all(
            TableName=self._table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=limit,
        )
        async for item in query:
            found.append(
                Conversation(
                    item["conversation_id"]["S"],
                    float(item["created_at"]["N"]),
                    float(item["updated_at"]["N"]),
                    int(item["messages"]["N"]),
                    item["sk"]["S"],
                )
            )
            if len(found) == limit:
                break
        return found

    async def delete(self, owner: Owner, conversation_id: str) -> bool:
        tenant, caller, conversation_id = conversation_key(owner, conversation_id)
        conversation = "c#" + digest(tenant, caller, conversation_id)
        async with self._locks.hold([conversation]):
            return await self._delete(owner, conversation_id, conversation)

    async def _delete(self, owner: Owner, conversation_id: str, conversation: str) -> bool:
        contention = Contention(f"deleting conversation {conversation_id!r}")
        while True:
            head = _Head.of(await self._get(conversation, _HEAD))
            if head is None:
                return False
            # Messages first: until the head goes, the conversation stays listed and deletable again.
            keys = [
                {"pk": item["pk"], "sk": item["sk"]}
                async for item in self._client.query_all(
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :messages)",
                    ExpressionAttributeValues={":pk": s(conversation), ":messages": s("m#")},
                    ProjectionExpression="pk, sk",
                    ConsistentRead=True,
                )
            ]
            await self._client.delete_many(self._table, keys)
            owner_key = "o#" + digest(owner.tenant, owner.caller)
            operations = [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": self._key(conversation, _HEAD),
                        # Nobody appended since the messages were listed: none is left behind.
                        "ConditionExpression": "#messages = :read",
                        "ExpressionAttributeNames": {"#messages": "messages"},
                        "ExpressionAttributeValues": {":read": n(head.messages)},
                    }
                },
                {"Delete": {"TableName": self._table, "Key": self._key(owner_key, head.index_sk)}},
                self._count_owner(owner, -1),
            ]
            try:
                await self._client.call(
                    "transact_write_items", TransactItems=operations, ClientRequestToken=uuid.uuid4().hex
                )
                return True
            except ClientError as error:
                codes = cancellation_codes(error)
                if codes[0] == "ConditionalCheckFailed":
                    continue  # an append came in between: delete its messages too
                if not any(code in RETRYABLE_REASONS for code in codes):
                    raise
            await contention.lost()

    async def delete_tenant(self, tenant: str) -> int:
        check_id(tenant, "tenant")
        tenant_key = "t#" + digest(tenant)
        entries = [
            item
            async for item in self._client.query_all(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s(tenant_key)},
                ConsistentRead=True,
            )
        ]
        deleted = 0
        for entry in entries:
            owner = Owner(entry["tenant"]["S"], entry["caller"]["S"])
            for _ in range(5):  # again while the owner begins new conversations during the erasure
                ids = [
                    item["conversation_id"]["S"]
                    async for item in self._client.query_all(
                        TableName=self._table,
                        KeyConditionExpression="pk = :pk",
                        ExpressionAttributeValues={":pk": s("o#" + digest(owner.tenant, owner.caller))},
                        ProjectionExpression="conversation_id",
                        ConsistentRead=True,
                    )
                ]
                for conversation_id in ids:
                    deleted += int(await self.delete(owner, conversation_id))
                try:
                    # Only once the owner has no conversation left: a new one keeps the owner findable.
                    await self._client.call(
                        "delete_item",
                        TableName=self._table,
                        Key={"pk": s(tenant_key), "sk": entry["sk"]},
                        ConditionExpression="attribute_not_exists(#c) OR #c <= :zero",
                        ExpressionAttributeNames={"#c": "conversations"},
                        ExpressionAttributeValues={":zero": n(0)},
                    )
                    break
                except ClientError as error:
                    if error_code(error) not in (
                        "ConditionalCheckFailedException",
                        "TransactionConflictException",
                    ):
                        raise
        return deleted

    async def close(self) -> None:
        await self._client.close()


# -- vectors -----------------------------------------------------------------------------------------------

_REVISION = "rev"
_UPSERT_BATCH = TRANSACTION_ITEMS - 1  # and the revision


class DynamoDBVectorStore:
    """Vectors in one DynamoDB table, ranked in numpy (layout and limits in the module docstring)."""

    def __init__(self, client: DynamoDBClient, table: str, dimensions: int) -> None:
        self._client = client
        self._table = table
        self._dimensions = dimensions
        self._cache = SnapshotCache()

    @classmethod
    async def connect(cls, table: str, dimensions: int, *, region: str | None = None) -> DynamoDBVectorStore:
        client = await DynamoDBClient.for_table(table, MEMORIES_SCHEMA, region)
        return cls(client, table, dimensions)

    @staticmethod
    def _partition(namespace: str) -> str:
        return "v#" + digest(check_id(namespace, "namespace"))

    async def upsert(self, namespace: str, items: Sequence[VectorItem]) -> None:
        pk = self._partition(namespace)
        latest = {item.id: (item, values) for item, values in check_items(items, self._dimensions)}
        documents = []
        for item, values in latest.values():  # the last item with an id wins
            document = {
                "pk": s(pk),
                "sk": s("i#" + hashlib.sha256(item.id.encode()).hexdigest()),
                "namespace": s(namespace),
                "id": s(item.id),
                "text": s(item.text),
                "metadata": s(dump_json(item.metadata)),
                "embedding": b(pack_embedding(values)),
            }
            size = sum(len(name) + _value_size(value) for name, value in document.items())
            if size > ITEM_BYTES:
                raise ValueError(f"item {item.id!r} is {size} bytes: a DynamoDB item holds at most 400 KB")
            documents.append((document, size))
        batch: list[dict[str, Any]] = []
        weight = 0
        for document, size in documents:
            if batch and (len(batch) == _UPSERT_BATCH or weight + size > TRANSACTION_BYTES):
                await self._write(pk, batch)
                batch, weight = [], 0
            batch.append({"Put": {"TableName": self._table, "Item": document}})
            weight += size
        if batch:
            await self._write(pk, batch)

    async def _write(self, pk: str, operations: list[dict[str, Any]]) -> None:
        """The operations and a new revision of the namespace, in one transaction."""
        revision = {"pk": s(pk), "sk": s(_REVISION), "revision": s(uuid.uuid4().hex)}
        operations = [*operations, {"Put": {"TableName": self._table, "Item": revision}}]
        contention = Contention("writing vector memory")
        while True:
            try:
                await self._client.call(
                    "transact_write_items", TransactItems=operations, ClientRequestToken=uuid.uuid4().hex
                )
                return
            except ClientError as error:
                if not any(code in RETRYABLE_REASONS for code in cancellation_codes(error)):
                    raise
            await contention.lost()

    async def query(
        self,
        namespace: str,
        embedding: Sequence[float],
        top_k: int = 5,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        pk = self._partition(namespace)
        values = check_embedding(embedding, self._dimensions)
        top_k = check_count(top_k, "top_k")
        where = check_where(where)
        snapshot = await self._snapshot(namespace, pk)
        return snapshot.search(values, top_k, where) if snapshot else []

    async def _snapshot(self, namespace: str, pk: str) -> Snapshot | None:
        """The namespace's vectors, read again only when its revision changed (None if never written).

        The revision is read first: whatever is written after it changes the revision, so a snapshot that
        caught part of a later write is replaced at the next query."""
        reply = await self._client.call(
            "get_item", TableName=self._table, Key={"pk": s(pk), "sk": s(_REVISION)}, ConsistentRead=True
        )
        if "Item" not in reply:
            return None
        revision = reply["Item"]["revision"]["S"]
        cached = self._cache.get(namespace, revision)
        if cached is not None:
            return cached
        documents: list[Document] = []
        embeddings: list[bytes] = []
        query = self._client.query_all(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :items)",
            ExpressionAttributeValues={":pk": s(pk), ":items": s("i#")},
            ConsistentRead=True,
        )
        async for item in query:
            documents.append(Document(item["id"]["S"], item["text"]["S"], json.loads(item["metadata"]["S"])))
            embeddings.append(bytes(item["embedding"]["B"]))
        return self._cache.put(namespace, Snapshot(revision, documents, embeddings, self._dimensions))

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        pk = self._partition(namespace)
        unique = list(dict.fromkeys(check_id(id_, "item id") for id_ in ids))
        for start in range(0, len(unique), _UPSERT_BATCH):
            operations = [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": {"pk": s(pk), "sk": s("i#" + hashlib.sha256(id_.encode()).hexdigest())},
                    }
                }
                for id_ in unique[start : start + _UPSERT_BATCH]
            ]
            await self._write(pk, operations)

    async def close(self) -> None:
        self._cache.clear()
        await self._client.close()


def _value_size(value: dict[str, Any]) -> int:
    [(kind, content)] = value.items()
    if kind == "B":
        return len(content)
    return len(str(content).encode())


__all__ = [
    "CONVERSATIONS_SCHEMA",
    "MEMORIES_SCHEMA",
    "DynamoDBClient",
    "DynamoDBConversationStore",
    "DynamoDBVectorStore",
    "KeyLocks",
    "TableSchema",
]
