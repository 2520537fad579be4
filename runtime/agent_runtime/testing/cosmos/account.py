"""The local account's state: databases, containers, documents, per-item TTL and transactional batches."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.testing.cosmos.base import (
    ID_FORBIDDEN,
    UNDEFINED,
    Clock,
    CosmosError,
    Document,
    bad_request,
    conflict,
    not_found,
    precondition_failed,
)
from agent_runtime.testing.cosmos.partition import effective_partition_key
from agent_runtime.testing.cosmos.query import MISSING, PropertyPath, Query


class _Rids:
    """Resource ids shaped like the service's: base64 of the parent's id bytes plus a counter, ``/`` as ``-``.

    The shape matters: the SDK tells a ``_self`` link from a name-based one by its database segment being
    eight base64 characters.
    """

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def make(self, parent: bytes, width: int) -> bytes:
        return parent + next(self._counter).to_bytes(width, "big")

    @staticmethod
    def text(rid: bytes) -> str:
        return base64.b64encode(rid).decode().replace("/", "-")


def _new_etag() -> str:
    return f'"{uuid.uuid4()}"'


@dataclass
class _Container:
    properties: Document
    rid: bytes
    partitions: dict[str, dict[str, Document]] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return list(self.properties["partitionKey"]["paths"])

    @property
    def default_ttl(self) -> int | None:
        return self.properties.get("defaultTtl")

    def all_documents(self) -> Iterator[Document]:
        for documents in self.partitions.values():
            yield from documents.values()

    def expire(self, now: float) -> None:
        """Drop every expired item: the service's TTL, checked lazily whenever the container is touched."""
        for key, documents in list(self.partitions.items()):
            alive = {id_: doc for id_, doc in documents.items() if not self._expired(doc, now)}
            if len(alive) != len(documents):
                self.partitions[key] = alive

    def _expired(self, document: Document, now: float) -> bool:
        if self.default_ttl is None:
            return False
        ttl = document.get("ttl")
        if ttl is None:
            ttl = self.default_ttl
        return ttl > 0 and document["_ts"] + ttl <= now


@dataclass
class _Database:
    properties: Document
    rid: bytes
    containers: dict[str, _Container] = field(default_factory=dict)


def partition_key_definition(paths: str | Sequence[str]) -> Document:
    """The ``partitionKey`` property for one path (``Hash``) or a hierarchical key (``MultiHash``)."""
    if isinstance(paths, str):
        return {"paths": [paths], "kind": "Hash", "version": 2}
    return {"paths": list(paths), "kind": "MultiHash", "version": 2}


def _check_partition_key_definition(definition: Any) -> None:
    if not isinstance(definition, dict) or not isinstance(definition.get("paths"), list):
        raise bad_request("a container needs a partitionKey with its paths")
    paths, kind = definition["paths"], definition.get("kind", "Hash")
    if not all(isinstance(path, str) and path.startswith("/") for path in paths):
        raise bad_request(f"partition key paths must start with '/': {paths}")
    if kind == "Hash" and len(paths) != 1:
        raise bad_request("a Hash partition key has exactly one path")
    if kind == "MultiHash" and not (1 <= len(paths) <= 3 and definition.get("version") == 2):
        raise bad_request("a MultiHash partition key has one to three paths and version 2")
    if kind not in ("Hash", "MultiHash"):
        raise bad_request(f"unsupported partition key kind {kind!r}")


def _check_ttl(value: Any, what: str) -> None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or value == 0 or value < -1
    ):
        raise bad_request(f"{what} must be -1 or a positive number of seconds, not {value!r}")


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 255 or ID_FORBIDDEN.search(value):
        raise bad_request(f"{what} must be a non-empty string of at most 255 characters without / \\ ? #")
    return value


def _key_text(values: Sequence[Any]) -> str:
    """A logical partition's identity: its key values as canonical JSON (the header's own encoding)."""
    return json.dumps(list(values), sort_keys=True, separators=(",", ":"))


def _is_key_value(value: Any) -> bool:
    return value is None or value == UNDEFINED or isinstance(value, str | int | float)


def _document_values(document: Document, paths: Sequence[str]) -> list[Any]:
    values = (PropertyPath(tuple(path.strip("/").split("/"))).value_in(document) for path in paths)
    return [UNDEFINED if value is MISSING else value for value in values]


@dataclass(frozen=True)
class QueryScope:
    """The documents a query reads: one logical partition (``key``, the full partition key), an effective
    partition key range (a hierarchical key's prefix), or, with neither, the whole container. With a single
    physical partition the gateway can serve a cross-partition query itself, as the service does."""

    key: list[Any] | None = None
    epk_range: tuple[str, str] | None = None

    def covers(self, document: Document, definition: Document) -> bool:
        if self.epk_range is None:
            return True
        if definition.get("version") != 2:
            raise bad_request("effective partition key ranges need a version 2 partition key")
        start, end = self.epk_range
        return start <= effective_partition_key(_document_values(document, definition["paths"])) < end


@dataclass(frozen=True)
class _Write:
    """What stamping a written document needs: the time, its container's ``_self``, and the next rid."""

    now: float
    container_self: str
    rids: _Rids
    container_rid: bytes

    def stamp(self, body: Document, previous: Document | None) -> Document:
        rid = previous["_rid"] if previous else _Rids.text(self.rids.make(self.container_rid, 8))
        system = {
            "_rid": rid,
            "_self": f"{self.container_self}docs/{rid}/",
            "_etag": _new_etag(),
            "_attachments": "attachments/",
            "_ts": int(self.now),
        }
        return {key: value for key, value in body.items() if key not in system} | system


@dataclass
class Result:
    """One item operation's outcome, as a point response or a batch entry."""

    status: int
    document: Document | None


class Partition:
    """The item operations of one logical partition, on a mapping a batch can stage and throw away."""

    def __init__(self, documents: dict[str, Document], key: str, paths: Sequence[str], write: _Write) -> None:
        self.documents = documents
        self.key = key
        self.changed = False
        self._paths = paths
        self._write = write

    def create(self, body: Any) -> Result:
        id_ = self._check_body(body)
        if id_ in self.documents:
            raise conflict(f"item {id_!r}")
        return self._store(201, body, None)

    def upsert(self, body: Any, if_match: str | None) -> Result:
        id_ = self._check_body(body)
        previous = self.documents.get(id_)
        if previous is None:
            if if_match is not None:
                raise not_found(f"item {id_!r}")
            return self._store(201, body, None)
        self._check_etag(previous, if_match)
        return self._store(200, body, previous)

    def replace(self, id_: str, body: Any, if_match: str | None) -> Result:
        previous = self._existing(id_)
        if self._check_body(body) != previous["id"]:
            raise bad_request(
                f"the body's id {body['id']!r} differs from the replaced item's {previous['id']!r}"
            )
        self._check_etag(previous, if_match)
        return self._store(200, body, previous)

    def read(self, id_: str) -> Result:
        return Result(200, self._existing(id_))

    def delete(self, id_: str, if_match: str | None) -> Result:
        previous = self._existing(id_)
        self._check_etag(previous, if_match)
        del self.documents[previous["id"]]
        self.changed = True
        return Result(204, None)

    def _existing(self, id_: str) -> Document:
        """The item named by ``id_``: its id, or its ``_rid`` when the SDK used the item's ``_self`` link."""
        found = self.documents.get(id_) or next(
            (document for document in self.documents.values() if document["_rid"] == id_), None
        )
        if found is None:
            raise not_found(f"item {id_!r}")
        return found

    def _check_body(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise bad_request("an item must be a JSON object")
        id_ = check_id(body.get("id"), "an item's id")
        if (key := _key_text(_document_values(body, self._paths))) != self.key:
            raise bad_request(
                f"the partition key of item {id_!r} ({key}) does not match the one in the request ({self.key})"
            )
        _check_ttl(body.get("ttl"), "an item's ttl")
        return id_

    @staticmethod
    def _check_etag(current: Document, if_match: str | None) -> None:
        if if_match is not None and if_match not in ("*", current["_etag"]):
            raise precondition_failed(f"item {current['id']!r}")

    def _store(self, status: int, body: Document, previous: Document | None) -> Result:
        document = self._write.stamp(body, previous)
        self.documents[document["id"]] = document
        self.changed = True
        return Result(status, document)


_BATCH_OPERATIONS = frozenset({"Create", "Upsert", "Replace", "Read", "Delete"})


_FAILED_DEPENDENCY = CosmosError(424, "FailedDependency", "another operation in the batch failed")


def _check_batch_operation(operation: Any) -> None:
    """Refuse the whole batch, before running any of it, if it asks for something unsupported."""
    kind = operation.get("operationType") if isinstance(operation, dict) else None
    if kind not in _BATCH_OPERATIONS:
        raise bad_request(f"batch operation {kind!r} is not supported (only {sorted(_BATCH_OPERATIONS)})")
    if "ifNoneMatch" in operation:
        raise bad_request("ifNoneMatch in batch operations is not supported")


def _batch_operation(partition: Partition, operation: Document) -> Result:
    kind = operation["operationType"]
    if_match = operation.get("ifMatch")
    if kind == "Create":
        return partition.create(operation.get("resourceBody"))
    if kind == "Upsert":
        return partition.upsert(operation.get("resourceBody"), if_match)
    id_ = check_id(operation.get("id"), "a batch operation's id")
    if kind == "Replace":
        return partition.replace(id_, operation.get("resourceBody"), if_match)
    if kind == "Read":
        return partition.read(id_)
    return partition.delete(id_, if_match)


class CosmosAccount:
    """The account's databases, containers and items, in memory; one lock serialises every operation, so
    the server's event loop and the test's own thread (pre-creating infrastructure) can share it."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rids = _Rids()
        self._databases: dict[str, _Database] = {}
        self.lsn = 0
        """Bumped on every item write; the session token the server hands out (it is always up to date)."""

    # Infrastructure.

    def create_database(self, id_: str) -> Document:
        """Create a database (409 if it exists); returns its properties."""
        check_id(id_, "a database id")
        with self._lock:
            if id_ in self._databases:
                raise conflict(f"database {id_!r}")
            rid = self._rids.make(b"", 4)
            properties = self._system({"id": id_}, rid, "dbs", colls="colls/", users="users/")
            self._databases[id_] = _Database(properties, rid)
            return copy.deepcopy(properties)

    def read_database(self, id_: str) -> Document:
        with self._lock:
            return copy.deepcopy(self._database(id_).properties)

    def create_container(self, database: str, body: Any) -> Document:
        """Create a container from its REST properties (409 if it exists); returns them, with system ones."""
        if not isinstance(body, dict):
            raise bad_request("a container must be a JSON object")
        id_ = check_id(body.get("id"), "a container id")
        _check_partition_key_definition(body.get("partitionKey"))
        _check_ttl(body.get("defaultTtl"), "defaultTtl")
        if "uniqueKeyPolicy" in body:
            raise bad_request("unique key policies are not supported by the local server")
        with self._lock:
            owner = self._database(database)
            if id_ in owner.containers:
                raise conflict(f"container {id_!r}")
            rid = self._rids.make(owner.rid, 4)
            properties = self._system(
                {"indexingPolicy": {"indexingMode": "consistent", "automatic": True}} | body,
                rid,
                f"{owner.properties['_self']}colls",
                docs="docs/",
                sprocs="sprocs/",
                triggers="triggers/",
                udfs="udfs/",
                conflicts="conflicts/",
            )
            owner.containers[id_] = _Container(properties, rid)
            return copy.deepcopy(properties)

    def read_container(self, database: str, id_: str) -> Document:
        with self._lock:
            return copy.deepcopy(self._container(database, id_).properties)

    def documents(self, database: str, container: str) -> list[Document]:
        """The container's unexpired items, for assertions in tests."""
        with self._lock:
            return copy.deepcopy(list(self._live_container(database, container).all_documents()))

    # Items.

    def item(self, database: str, container: str, key: Any, action: Callable[[Partition], Result]) -> Result:
        """Run one item operation in the logical partition ``key`` (the decoded partition key header)."""
        with self._lock:
            owner = self._live_container(database, container)
            partition = self._partition(owner, key)
            result = action(partition)
            self._commit(owner, partition)
            return result

    def batch(self, database: str, container: str, key: Any, operations: Any) -> list[Result | CosmosError]:
        """Apply every operation or none: on a failure, that operation's error and 424 for all the others."""
        if not isinstance(operations, list) or not operations:
            raise bad_request("a batch is a non-empty JSON array of operations")
        for operation in operations:
            _check_batch_operation(operation)
        with self._lock:
            owner = self._live_container(database, container)
            partition = self._partition(owner, key)
            results: list[Result | CosmosError] = []
            for index, operation in enumerate(operations):
                try:
                    results.append(_batch_operation(partition, operation))
                except CosmosError as error:
                    return [
                        error if position == index else _FAILED_DEPENDENCY
                        for position in range(len(operations))
                    ]
            self._commit(owner, partition)
            return results

    def query(self, database: str, container: str, scope: QueryScope, query: Query) -> list[Document]:
        with self._lock:
            owner = self._live_container(database, container)
            if scope.key is not None:
                return query.run(list(self._partition(owner, scope.key).documents.values()))
            definition = owner.properties["partitionKey"]
            return query.run(
                [document for document in owner.all_documents() if scope.covers(document, definition)]
            )

    # Internals, called with the lock held.

    def _system(self, body: Document, rid: bytes, parent: str, **links: str) -> Document:
        text = _Rids.text(rid)
        system = {"_rid": text, "_self": f"{parent}/{text}/", "_etag": _new_etag(), "_ts": int(self._clock())}
        return body | system | {f"_{name}": link for name, link in links.items()}

    def _database(self, id_: str) -> _Database:
        found = self._databases.get(id_) or next(
            (db for db in self._databases.values() if db.properties["_rid"] == id_), None
        )
        if found is None:
            raise not_found(f"database {id_!r}")
        return found

    def _container(self, database: str, id_: str) -> _Container:
        containers = self._database(database).containers
        found = containers.get(id_) or next(
            (container for container in containers.values() if container.properties["_rid"] == id_), None
        )
        if found is None:
            raise not_found(f"container {id_!r}")
        return found

    def _live_container(self, database: str, id_: str) -> _Container:
        container = self._container(database, id_)
        container.expire(self._clock())
        return container

    def _partition(self, container: _Container, key: Any) -> Partition:
        paths = container.paths
        if not isinstance(key, list) or len(key) != len(paths) or not all(map(_is_key_value, key)):
            raise bad_request(
                f"the request needs the full partition key ({len(paths)} string, number, boolean or null "
                f"value(s) for {paths}), got {key!r}"
            )
        text = _key_text(key)
        write = _Write(self._clock(), container.properties["_self"], self._rids, container.rid)
        return Partition(dict(container.partitions.get(text, {})), text, paths, write)

    def _commit(self, container: _Container, partition: Partition) -> None:
        if partition.changed:
            container.partitions[partition.key] = partition.documents
            self.lsn += 1
