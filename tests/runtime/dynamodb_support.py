"""DynamoDB for the runtime's tests: a moto server that behaves like the service under concurrency, the
tables exactly as the infrastructure creates them, and the ``dynamodb`` fixture.

moto's server handles requests on many threads without locking its tables, and rolls a failed transaction
back by restoring a copy of the whole table: two concurrent writers can interleave inside one conditional
write, and a cancelled transaction can undo another's committed one. DynamoDB serialises the writes to an
item, so the server run here (this file, run as a script) executes one request at a time. It can also
cancel a share of the writes to tables whose name starts with ``conflicted-`` the way DynamoDB does when
another transaction holds the item (``TransactionCanceledException`` with ``TransactionConflict``, or
``TransactionConflictException``), so the stores' retries run too.

The table definitions below are the contract with the infrastructure: they are written from the module
docstrings of ``agent_runtime.memory.dynamodb``, ``agent_runtime.tasks.store_dynamodb`` and
``agent_runtime.governance.ledger_dynamodb``, not taken from the runtime, whose startup check then
confirms they are what it needs.
"""

from __future__ import annotations

import io
import json
import random
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for servers.py
from servers import ServerError, _process, free_port

REGION = "us-east-1"
CONFLICT_PREFIX = "conflicted-"
CONFLICT_RATE = 0.2
"""The share of writes to a ``conflicted-*`` table that are cancelled as if another transaction held an item."""

_STRINGS = [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]
_KEYS = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
TABLES: dict[str, dict[str, Any]] = {
    "conversations": {"KeySchema": _KEYS, "AttributeDefinitions": _STRINGS},
    "memories": {"KeySchema": _KEYS, "AttributeDefinitions": _STRINGS},
    "tasks": {
        "KeySchema": _KEYS,
        "AttributeDefinitions": [
            *_STRINGS,
            {"AttributeName": "awaiting", "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "awaiting_approval",
                "KeySchema": [
                    {"AttributeName": "awaiting", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    },
    "ledger": {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    },
}
"""CreateTable arguments of each table (all on-demand); the ledger also gets TTL on attribute ``ttl``."""
TTL_ATTRIBUTES = {"ledger": "ttl"}


@dataclass(frozen=True)
class DynamoDB:
    """The session's DynamoDB endpoint; ``create`` makes a fresh table of one kind and returns its name."""

    endpoint_url: str
    region: str = REGION

    @property
    def environment(self) -> dict[str, str]:
        """What a runtime process needs to reach it, the SDK's own way."""
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create(self, kind: str, *, conflicted: bool = False) -> str:
        name = f"{CONFLICT_PREFIX if conflicted else ''}{kind}-{uuid.uuid4().hex[:12]}"
        client = self.client()
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **TABLES[kind])
        if kind in TTL_ATTRIBUTES:
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTES[kind]},
            )
        return name


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[DynamoDB]:
    port = free_port()
    try:
        with tempfile.TemporaryDirectory(prefix="moto-dynamodb-") as workspace:
            command = [sys.executable, __file__, str(port)]
            with _process(command, port, "moto server (DynamoDB)", Path(workspace)):
                yield DynamoDB(f"http://127.0.0.1:{port}")
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def dynamodb(dynamodb_server: DynamoDB, monkeypatch: pytest.MonkeyPatch) -> DynamoDB:
    """The session's server, reachable from this process the SDK's own way (environment variables)."""
    for name, value in dynamodb_server.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return dynamodb_server


# -- the server (run as a script) ---------------------------------------------------------------------------

_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


class _OneAtATime:
    """WSGI middleware: one request at a time through moto, and conflicts on ``conflicted-*`` tables."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._random = random.Random()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        conflict = self._conflict(environ.get("HTTP_X_AMZ_TARGET", ""), body)
        if conflict is not None:
            payload = json.dumps(conflict).encode()
            start_response(
                "400 Bad Request",
                [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        with self._lock:
            result = self._app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    def _conflict(self, target: str, body: bytes) -> dict[str, Any] | None:
        operation = target.rpartition(".")[2]
        if operation not in _WRITES and operation != "TransactWriteItems":
            return None
        try:
            request = json.loads(body)
        except ValueError:
            return None
        if operation == "TransactWriteItems":
            items = request.get("TransactItems", [])
            tables = [next(iter(item.values())).get("TableName", "") for item in items]
        else:
            tables = [request.get("TableName", "")]
        if not any(t.startswith(CONFLICT_PREFIX) for t in tables) or self._random.random() >= CONFLICT_RATE:
            return None
        if operation != "TransactWriteItems":
            return {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                "message": "Transaction is ongoing for the item",
            }
        victim = self._random.randrange(len(tables))
        reasons = [
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
            if index == victim
            else {"Code": "None"}
            for index in range(len(tables))
        ]
        codes = ", ".join(reason["Code"] for reason in reasons)
        return {
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            "CancellationReasons": reasons,
        }


def _item_rollback() -> None:
    """moto rolls a cancelled transaction back by restoring a deep copy of each table it touches, taken
    before it starts: a cost that grows with the table (a second per transaction at a few hundred items).
    With one request at a time, restoring only the items the transaction touches is the same."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    class NoTableCopies:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = NoTableCopies  # type: ignore[assignment]
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            try:
                kind, operation = next(iter(entry.items()))
                name = operation["TableName"]
                table = self.get_table(name)
                key = operation.get("Key")
                if kind == "Put":
                    attributes = [table.hash_key_attr, table.range_key_attr]
                    key = {a: operation["Item"][a] for a in attributes if a is not None}
                current = self.get_item(name, key)
                saved.append((name, key, None if current is None else current.to_json()["Attributes"]))
            except Exception:  # noqa: BLE001, S112 - moto's own validation reports it
                continue
        try:
            original(self, transact_items)
        except Exception:
            for name, key, attributes in reversed(saved):
                if attributes is not None:
                    self.put_item(name, copy.deepcopy(attributes))
                elif self.get_item(name, key) is not None:
                    self.delete_item(name, key)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _serve(port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    _item_rollback()
    app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
