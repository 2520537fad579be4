"""A local Azure Cosmos DB for NoSQL server: the subset of the REST API that the ``azure-cosmos`` SDK needs for
databases, containers, point operations, per-item TTL, transactional batches and simple queries.

It exists so that Cosmos-backed stores can be tested against the real SDK over real HTTP, offline, without
the emulator (in a coroutine, e.g. an async test)::

    from azure.cosmos.aio import CosmosClient
    from agent_runtime.testing.cosmos import LocalCosmosServer, StaticTokenCredential

    with LocalCosmosServer() as cosmos:
        cosmos.create_container("db", "tasks", partition_key="/id", default_ttl=-1)  # existing infrastructure
        async with CosmosClient(cosmos.url, credential=StaticTokenCredential()) as client:
            container = client.get_database_client("db").get_container_client("tasks")
            await container.create_item({"id": "t1", "state": "queued"})

The server speaks HTTPS by default (a self-signed certificate for ``127.0.0.1`` and ``localhost``, made at
start-up) because azure-core refuses to send bearer tokens over plain HTTP, so an Entra ID (AAD) credential
only works over TLS. The SDK skips certificate verification by itself for the hosts ``127.0.0.1`` and
``localhost``, so a client needs no extra arguments. ``LocalCosmosServer(tls=False)`` serves plain HTTP,
which the SDK accepts with the account-key credential (``credential=cosmos.key``) only.

Authentication: every request needs an ``authorization`` header (401 otherwise). Account-key signatures
(``type=master``) are verified against :attr:`LocalCosmosServer.key`; Entra ID tokens (``type=aad``) are
accepted as long as they are not empty, since there is no identity provider to check them against.

Supported:

- account discovery (``GET /``): one region, whose read and write endpoint is the URL the client used;
- databases: create, read; containers: create (partition key ``Hash`` or hierarchical ``MultiHash``,
  ``defaultTtl``), read, and their partition key ranges (one range covering the whole key space);
- items: create (409 on an existing id in the logical partition), read (404), upsert, replace and delete,
  with ``If-Match`` (412 on a stale ETag), by name or by ``_self`` link; system properties ``_rid``,
  ``_self``, ``_etag`` (new on every write), ``_attachments`` and ``_ts``; the partition key header must
  match the document's partition key values;
- per-item TTL as the service applies it: with ``defaultTtl`` -1 an item's ``ttl`` (seconds after its last
  write, by ``_ts``) expires it; with a positive ``defaultTtl`` items without ``ttl`` expire too; without
  ``defaultTtl`` the ``ttl`` property is ignored. Expired items vanish lazily, on the next access;
- transactional batches (create, upsert, replace, read, delete, ``ifMatch``): all operations or none; a
  failed batch answers 207 Multi-Status with the failing operation's status and 424 for the others, which
  the SDK raises as ``CosmosBatchOperationError``;
- queries of the form ``SELECT [TOP n] * | c.a[, c.b.c, c["d"]] FROM c [WHERE <operand> = <operand>
  [AND ...]] [ORDER BY c.x [ASC|DESC]]``, where an operand is a property path, an ``@parameter`` or a
  literal (string, number, true, false, null), with SQL semantics (undefined equals nothing, ``true`` is
  not ``1``, ORDER BY ranks types); paging with ``max_item_count``. A query reads one logical partition
  (the full key), a hierarchical key's prefix (the SDK sends it as an effective-partition-key range, which
  the server hashes the way the service does), or, without a key, the whole container: with a single
  physical partition the gateway serves cross-partition queries itself, so the SDK asks for no query plan.

Refused with 400 BadRequest and a message naming what is unsupported: any other query syntax (OR, other
comparisons, functions, JOIN, VALUE, DISTINCT, aliases, GROUP BY, OFFSET/LIMIT, several ORDER BY keys),
patch operations, ``If-None-Match`` on items, unique key policies. Everything else (stored procedures,
change feed, users, offers, listing or deleting databases and containers) answers 400 as an unsupported
operation. Request charges are a nominal 1 RU per request, not a model of the service's costs.
"""

from agent_runtime.testing.cosmos.account import CosmosAccount
from agent_runtime.testing.cosmos.base import CosmosError
from agent_runtime.testing.cosmos.partition import effective_partition_key
from agent_runtime.testing.cosmos.query import parse_query
from agent_runtime.testing.cosmos.rest import RecordedRequest, create_cosmos_app
from agent_runtime.testing.cosmos.server import LocalCosmosServer, StaticTokenCredential

__all__ = [
    "CosmosAccount",
    "CosmosError",
    "LocalCosmosServer",
    "RecordedRequest",
    "StaticTokenCredential",
    "create_cosmos_app",
    "effective_partition_key",
    "parse_query",
]
