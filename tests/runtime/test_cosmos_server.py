"""The local Cosmos DB server, driven only by the real ``azure-cosmos`` async SDK over real HTTP(S).

One server serves the module; each test works in containers of its own. The server's clock is a manual
one, so TTL expiry is tested by moving time forward rather than by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from agent_runtime.testing.cosmos import CosmosError, LocalCosmosServer, StaticTokenCredential

pytestmark = pytest.mark.anyio

DATABASE = "db"
HIERARCHY = ["/tenant", "/caller", "/conversationId"]


class ManualClock:
    """The server's clock (epoch seconds), moved by the tests."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def cosmos(clock: ManualClock) -> Iterator[LocalCosmosServer]:
    with LocalCosmosServer(clock=clock) as server:
        yield server


@pytest.fixture
async def client(cosmos: LocalCosmosServer) -> AsyncIterator[CosmosClient]:
    async with CosmosClient(cosmos.url, credential=StaticTokenCredential()) as connected:
        yield connected


def fresh_name() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


def open_container(
    cosmos: LocalCosmosServer, client: CosmosClient, partition_key: str | list[str], **options: Any
) -> ContainerProxy:
    """A new container, made by the server as infrastructure would, opened through the SDK."""
    name = fresh_name()
    cosmos.create_container(DATABASE, name, partition_key, **options)
    return client.get_database_client(DATABASE).get_container_client(name)


@pytest.fixture
def container(cosmos: LocalCosmosServer, client: CosmosClient) -> ContainerProxy:
    """Partitioned by ``/p``, with TTL on and no default (``defaultTtl`` -1)."""
    return open_container(cosmos, client, "/p", default_ttl=-1)


async def rows(container: ContainerProxy, query: str, **options: Any) -> list[dict[str, Any]]:
    return [row async for row in container.query_items(query, **options)]


async def ids(container: ContainerProxy, query: str, **options: Any) -> list[str]:
    return [row["id"] for row in await rows(container, query, **options)]


# --- connecting --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_account_discovery_sends_the_client_back_to_the_url_it_used(
    cosmos: LocalCosmosServer, host: str
) -> None:
    url = cosmos.url.replace("127.0.0.1", host)
    async with CosmosClient(url, credential=StaticTokenCredential()) as client:
        account = await client._get_database_account()  # the async client has no public name for it
        await client.create_database_if_not_exists(DATABASE)

    assert account.WritableLocations == [{"name": "Local", "databaseAccountEndpoint": url}]
    assert account.ReadableLocations == account.WritableLocations


async def test_a_token_credential_authenticates_over_https(
    cosmos: LocalCosmosServer, client: CosmosClient
) -> None:
    await client.create_database_if_not_exists(DATABASE)

    assert cosmos.url.startswith("https://")
    assert cosmos.requests[-1].headers["authorization"] == "type=aad&ver=1.0&sig=local-cosmos-token"


async def test_an_account_key_authenticates_over_plain_http_by_name_and_by_self_link() -> None:
    with LocalCosmosServer(tls=False) as server:
        server.create_container(DATABASE, "items", "/p")
        async with CosmosClient(server.url, credential=server.key) as client:
            items = client.get_database_client(DATABASE).get_container_client("items")
            created = await items.create_item({"id": "a", "p": "x"})
            replaced = await items.replace_item(created, {"id": "a", "p": "x", "v": 2})  # by its _self link
            await items.delete_item(replaced, partition_key="x")

        assert server.url.startswith("http://")
        assert [request.path for request in server.requests[-2:]] == [f"/{created['_self']}"] * 2
        assert all(
            request.headers["authorization"].startswith("type%3Dmaster") for request in server.requests
        )
        assert server.documents(DATABASE, "items") == []


async def test_a_wrong_key_is_unauthorized(
    cosmos: LocalCosmosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK retries a failed account lookup three times, 500 ms apart, unless told otherwise.
    monkeypatch.setenv("AZURE_COSMOS_HEALTH_CHECK_MAX_RETRIES", "0")
    client = CosmosClient(cosmos.url, credential=base64.b64encode(b"not the key" * 6).decode())
    try:
        with pytest.raises(CosmosHttpResponseError) as refused:
            await client.get_database_client(DATABASE).read()
    finally:
        await client.close()

    assert refused.value.status_code == 401
    assert "bad signature" in str(refused.value)


# --- databases and containers --------------------------------------------------------------------------------


async def test_databases_and_containers_are_created_once_and_echo_their_definition(
    client: CosmosClient,
) -> None:
    name, database_name = fresh_name(), fresh_name()
    database = await client.create_database_if_not_exists(database_name)
    again = await client.create_database_if_not_exists(database_name)
    _, created = await database.create_container_if_not_exists(
        id=name, partition_key=PartitionKey(path="/p"), default_ttl=-1, return_properties=True
    )
    _, existing = await database.create_container_if_not_exists(
        id=name, partition_key=PartitionKey(path="/p"), default_ttl=-1, return_properties=True
    )
    read = await database.get_container_client(name).read()

    assert (await database.read())["_rid"] == (await again.read())["_rid"]
    assert created["partitionKey"] == {"paths": ["/p"], "kind": "Hash", "version": 2}
    assert created["defaultTtl"] == -1
    assert existing["_rid"] == created["_rid"] == read["_rid"]
    assert read["partitionKey"] == created["partitionKey"]


async def test_hierarchical_partition_keys_are_echoed(client: CosmosClient) -> None:
    database = client.get_database_client(DATABASE)
    _, properties = await database.create_container_if_not_exists(
        id=fresh_name(), partition_key=PartitionKey(path=HIERARCHY, kind="MultiHash"), return_properties=True
    )

    assert properties["partitionKey"] == {"paths": HIERARCHY, "kind": "MultiHash", "version": 2}
    assert "defaultTtl" not in properties


async def test_containers_made_by_the_server_are_the_infrastructure_the_sdk_finds(
    cosmos: LocalCosmosServer, client: CosmosClient
) -> None:
    name = fresh_name()
    made = cosmos.create_container("infrastructure", name, HIERARCHY, default_ttl=3600)
    database = client.get_database_client("infrastructure")
    _, opened = await database.create_container_if_not_exists(
        id=name, partition_key=PartitionKey(path=HIERARCHY, kind="MultiHash"), return_properties=True
    )

    assert opened["_rid"] == made["_rid"]
    assert (opened["partitionKey"]["kind"], opened["defaultTtl"]) == ("MultiHash", 3600)
    with pytest.raises(CosmosError) as exists:
        cosmos.create_container("infrastructure", name, "/p")
    assert exists.value.status == 409
    with pytest.raises(CosmosResourceNotFoundError):
        await database.get_container_client("missing").read()


# --- items ---------------------------------------------------------------------------------------------------


async def test_create_read_upsert_replace_delete(container: ContainerProxy, clock: ManualClock) -> None:
    created = await container.create_item({"id": "a", "p": "x", "n": 1})
    assert created["_etag"].startswith('"') and created["_ts"] == int(clock.now)
    assert created["_self"].endswith(f"/docs/{created['_rid']}/")
    assert created.get_response_headers()["etag"] == created["_etag"]
    with pytest.raises(CosmosResourceExistsError):
        await container.create_item({"id": "a", "p": "x"})
    await container.create_item({"id": "a", "p": "y"})  # ids are unique per logical partition only

    assert await container.read_item("a", partition_key="x") == created
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("a", partition_key="z")

    upserted = await container.upsert_item({"id": "a", "p": "x", "n": 2})
    assert (upserted["n"], upserted["_rid"]) == (2, created["_rid"])
    assert upserted["_etag"] != created["_etag"]

    replaced = await container.replace_item(
        "a",
        {"id": "a", "p": "x", "n": 3},
        etag=upserted["_etag"],
        match_condition=MatchConditions.IfNotModified,
    )
    with pytest.raises(CosmosAccessConditionFailedError):
        await container.replace_item(
            "a",
            {"id": "a", "p": "x", "n": 4},
            etag=upserted["_etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    assert (await container.read_item("a", partition_key="x"))["_etag"] == replaced["_etag"]

    await container.delete_item("a", partition_key="x")
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("a", partition_key="x")
    with pytest.raises(CosmosResourceNotFoundError):
        await container.delete_item("a", partition_key="x")


async def test_concurrent_replaces_of_one_version_let_exactly_one_win(container: ContainerProxy) -> None:
    created = await container.create_item({"id": "a", "p": "x", "n": 0})

    async def replace(n: int) -> bool:
        try:
            await container.replace_item(
                "a",
                {"id": "a", "p": "x", "n": n},
                etag=created["_etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except CosmosAccessConditionFailedError:
            return False
        return True

    outcomes = await asyncio.gather(*(replace(n) for n in range(1, 11)))

    assert outcomes.count(True) == 1
    assert (await container.read_item("a", partition_key="x"))["n"] == outcomes.index(True) + 1


async def test_no_response_writes_return_no_body(
    cosmos: LocalCosmosServer, container: ContainerProxy
) -> None:
    written = await container.create_item({"id": "a", "p": "x"}, no_response=True)

    assert written == {}
    assert written.get_response_headers()["etag"] == cosmos.documents(DATABASE, container.id)[0]["_etag"]


async def test_hierarchical_keys_address_items_by_all_their_values(
    cosmos: LocalCosmosServer, client: CosmosClient
) -> None:
    container = open_container(cosmos, client, HIERARCHY)
    for tenant, caller, conversation in [("t", "u", "1"), ("t", "u", "2"), ("t", "v", "1"), ("s", "u", "1")]:
        await container.create_item(
            {"id": "head", "tenant": tenant, "caller": caller, "conversationId": conversation}
        )
    with pytest.raises(CosmosResourceExistsError):
        await container.create_item({"id": "head", "tenant": "t", "caller": "u", "conversationId": "1"})

    head = await container.read_item("head", partition_key=["t", "v", "1"])
    assert (head["tenant"], head["caller"], head["conversationId"]) == ("t", "v", "1")


# --- time to live ------------------------------------------------------------------------------------------


async def test_an_item_expires_ttl_seconds_after_its_last_write(
    container: ContainerProxy, clock: ManualClock
) -> None:
    await container.create_item({"id": "short", "p": "x", "ttl": 10})
    await container.create_item({"id": "forever", "p": "x"})
    clock.advance(9)
    await container.upsert_item({"id": "short", "p": "x", "ttl": 10})  # a write restarts the countdown
    clock.advance(9)
    assert (await container.read_item("short", partition_key="x"))["ttl"] == 10

    clock.advance(1)
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("short", partition_key="x")
    assert await ids(container, "SELECT * FROM c", partition_key="x") == ["forever"]
    await container.create_item({"id": "short", "p": "x"})  # its id is free again

    clock.advance(10**6)
    assert await ids(container, "SELECT * FROM c", partition_key="x") == ["forever", "short"]


async def test_ttl_is_ignored_unless_the_container_enables_it(
    cosmos: LocalCosmosServer, client: CosmosClient, clock: ManualClock
) -> None:
    container = open_container(cosmos, client, "/p")
    await container.create_item({"id": "a", "p": "x", "ttl": 1})
    clock.advance(100)

    assert (await container.read_item("a", partition_key="x"))["ttl"] == 1


async def test_a_default_ttl_expires_items_without_their_own(
    cosmos: LocalCosmosServer, client: CosmosClient, clock: ManualClock
) -> None:
    container = open_container(cosmos, client, "/p", default_ttl=5)
    await container.create_item({"id": "default", "p": "x"})
    await container.create_item({"id": "never", "p": "x", "ttl": -1})
    clock.advance(5)

    assert await ids(container, "SELECT * FROM c", partition_key="x") == ["never"]


async def test_an_invalid_ttl_is_a_bad_request(container: ContainerProxy) -> None:
    with pytest.raises(CosmosHttpResponseError) as refused:
        await container.create_item({"id": "a", "p": "x", "ttl": 0})

    assert refused.value.status_code == 400


# --- transactional batches -----------------------------------------------------------------------------------


async def test_a_batch_applies_every_operation(cosmos: LocalCosmosServer, container: ContainerProxy) -> None:
    kept = await container.create_item({"id": "kept", "p": "x", "v": 1})
    await container.create_item({"id": "gone", "p": "x"})

    results = await container.execute_item_batch(
        batch_operations=[
            ("create", ({"id": "new", "p": "x"},)),
            ("replace", ("kept", {"id": "kept", "p": "x", "v": 2}), {"if_match_etag": kept["_etag"]}),
            ("upsert", ({"id": "upserted", "p": "x"},)),
            ("read", ("kept",)),
            ("delete", ("gone",)),
        ],
        partition_key="x",
    )

    assert [result["statusCode"] for result in results] == [201, 200, 201, 200, 204]
    assert results[3]["resourceBody"]["v"] == 2
    assert all(result["eTag"] == result["resourceBody"]["_etag"] for result in results[:4])
    assert sorted(document["id"] for document in cosmos.documents(DATABASE, container.id)) == [
        "kept",
        "new",
        "upserted",
    ]
    assert cosmos.requests[-1].headers["x-ms-cosmos-is-batch-request"] == "True"


@pytest.mark.parametrize(
    ("failing", "status"),
    [
        (("create", ({"id": "kept", "p": "x"},)), 409),
        (("replace", ("kept", {"id": "kept", "p": "x"}), {"if_match_etag": '"stale"'}), 412),
        (("read", ("missing",)), 404),
        (("delete", ("missing",)), 404),
        (("create", ({"id": "elsewhere", "p": "y"},)), 400),  # outside the batch's partition
    ],
)
async def test_a_failed_batch_changes_nothing(
    cosmos: LocalCosmosServer, container: ContainerProxy, failing: tuple[Any, ...], status: int
) -> None:
    await container.create_item({"id": "kept", "p": "x", "v": 1})
    before = cosmos.documents(DATABASE, container.id)

    with pytest.raises(CosmosBatchOperationError) as failed:
        await container.execute_item_batch(
            batch_operations=[
                ("create", ({"id": "new", "p": "x"},)),
                ("upsert", ({"id": "kept", "p": "x", "v": 2},)),
                failing,
            ],
            partition_key="x",
        )

    assert (failed.value.status_code, failed.value.error_index) == (status, 2)
    assert [result["statusCode"] for result in failed.value.operation_responses] == [424, 424, status]
    assert cosmos.documents(DATABASE, container.id) == before


# --- queries -------------------------------------------------------------------------------------------------


@pytest.fixture
async def seeded(container: ContainerProxy) -> ContainerProxy:
    documents: list[dict[str, Any]] = [
        {"id": "1", "p": "x", "kind": "a", "n": 3, "flag": True, "nested": {"k": "v"}},
        {"id": "2", "p": "x", "kind": "b", "n": 1},
        {"id": "3", "p": "x", "kind": "a", "n": 2},
        {"id": "4", "p": "x", "kind": "a", "n": "text"},
        {"id": "5", "p": "y", "kind": "a", "n": 0},
    ]
    for document in documents:
        await container.create_item(document)
    return container


@pytest.mark.parametrize(
    ("query", "parameters", "expected"),
    [
        pytest.param(
            "SELECT c.id FROM c", {}, [{"id": "1"}, {"id": "2"}, {"id": "3"}, {"id": "4"}], id="projection"
        ),
        pytest.param(
            "SELECT c.id, c.n FROM c WHERE c.kind = @kind ORDER BY c.n DESC",
            {"@kind": "a"},
            [{"id": "4", "n": "text"}, {"id": "1", "n": 3}, {"id": "3", "n": 2}],
            id="where-parameter-order-desc-strings-after-numbers",
        ),
        pytest.param(
            "SELECT c.id, c.flag FROM c ORDER BY c.n ASC",
            {},
            [{"id": "2"}, {"id": "3"}, {"id": "1", "flag": True}, {"id": "4"}],
            id="order-asc-undefined-not-projected",
        ),
        pytest.param(
            "select top @n c.nested.k, c['id'] from c where c.kind = 'a' AND c.flag = true",
            {"@n": 5},
            [{"k": "v", "id": "1"}],
            id="nested-paths-literals-and",
        ),
        pytest.param("SELECT c.id FROM c WHERE c.flag = 1", {}, [], id="true-is-not-1"),
        pytest.param(
            "SELECT TOP @n c.id FROM c ORDER BY c.id DESC", {"@n": 2}, [{"id": "4"}, {"id": "3"}], id="top"
        ),
    ],
)
async def test_queries_within_a_partition(
    seeded: ContainerProxy, query: str, parameters: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    bound = [{"name": name, "value": value} for name, value in parameters.items()]

    assert await rows(seeded, query, parameters=bound, partition_key="x") == expected


async def test_results_come_in_pages_of_max_item_count(seeded: ContainerProxy) -> None:
    pages = seeded.query_items("SELECT c.id FROM c", partition_key="x", max_item_count=3).by_page()

    assert [[row["id"] async for row in page] async for page in pages] == [["1", "2", "3"], ["4"]]


async def test_queries_without_a_partition_key_read_the_whole_container(seeded: ContainerProxy) -> None:
    assert await ids(seeded, "SELECT c.id FROM c WHERE c.kind = 'a' ORDER BY c.n") == ["5", "3", "1", "4"]


async def test_a_hierarchical_key_prefix_reads_the_partitions_under_it(
    cosmos: LocalCosmosServer, client: CosmosClient
) -> None:
    container = open_container(cosmos, client, HIERARCHY)
    for tenant, caller, conversation in [("t", "u", "1"), ("t", "u", "2"), ("t", "v", "1"), ("s", "u", "1")]:
        await container.create_item(
            {
                "id": f"{tenant}{caller}{conversation}",
                "tenant": tenant,
                "caller": caller,
                "conversationId": conversation,
            }
        )

    assert await ids(container, "SELECT * FROM c", partition_key=["t", "u", "2"]) == ["tu2"]
    assert sorted(await ids(container, "SELECT c.id FROM c", partition_key=["t", "u"])) == ["tu1", "tu2"]
    assert sorted(await ids(container, "SELECT c.id FROM c", partition_key=["t"])) == ["tu1", "tu2", "tv1"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("SELECT * FROM c WHERE c.n > 1", "'> 1'"),
        ("SELECT * FROM c WHERE c.n = 1 OR c.n = 2", "'OR'"),
        ("SELECT VALUE c.n FROM c", "'VALUE'"),
        ("SELECT DISTINCT c.n FROM c", "'DISTINCT'"),
        ("SELECT c.n AS m FROM c", "'AS'"),
        ("SELECT COUNT(1) FROM c", "'(1) FROM c'"),
        ("SELECT * FROM c JOIN t IN c.tags", "'JOIN'"),
        ("SELECT * FROM c OFFSET 1 LIMIT 1", "'OFFSET'"),
        ("SELECT * FROM c ORDER BY c.n, c.id", "one property only"),
        ("SELECT * FROM c WHERE d.n = 1", "'d'"),
        ("SELECT * FROM c WHERE c.n = @undefined", "@undefined"),
        ("SELECT TOP -1 * FROM c", "non-negative"),
    ],
)
async def test_queries_outside_the_subset_are_refused_by_name(
    seeded: ContainerProxy, query: str, named: str
) -> None:
    with pytest.raises(CosmosHttpResponseError) as refused:
        await rows(seeded, query, partition_key="x")

    assert refused.value.status_code == 400
    assert named in str(refused.value) and "supports only" in str(refused.value)


PATCH = [{"op": "add", "path": "/n", "value": 1}]
UNSUPPORTED: dict[str, Callable[[ContainerProxy, dict[str, Any]], Awaitable[Any]]] = {
    "patch": lambda items, _: items.patch_item("a", partition_key="x", patch_operations=PATCH),
    "if-none-match": lambda items, item: items.read_item(
        "a", partition_key="x", etag=item["_etag"], match_condition=MatchConditions.IfModified
    ),
    "batch patch": lambda items, _: items.execute_item_batch([("patch", ("a", PATCH))], partition_key="x"),
}


@pytest.mark.parametrize("operation", list(UNSUPPORTED))
async def test_unsupported_operations_are_refused(container: ContainerProxy, operation: str) -> None:
    item = await container.create_item({"id": "a", "p": "x"})

    with pytest.raises(CosmosHttpResponseError) as refused:
        await UNSUPPORTED[operation](container, item)

    assert refused.value.status_code == 400
    assert "not supported" in str(refused.value)
