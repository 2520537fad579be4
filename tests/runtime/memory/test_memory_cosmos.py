"""The Cosmos DB backend against a fake container: what it sends, not what a live service answers.

No Cosmos DB emulator runs here (the Linux emulator is a container image and there is no Docker), so these
tests pin the requests themselves: container policies, the parameterised SQL, document bodies and the
optimistic-concurrency protocol of appends. The contract suite's semantics are not exercised live.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.cosmos.exceptions import (
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceNotFoundError,
)

from agent_runtime.cosmos_account import CosmosAccount
from agent_runtime.memory import DimensionMismatchError, Owner, VectorItem
from agent_runtime.memory import cosmos as cosmos_module
from agent_runtime.memory.cosmos import (
    CosmosConversationStore,
    CosmosVectorStore,
    vector_embedding_policy,
    vector_indexing_policy,
)

pytestmark = pytest.mark.anyio


def not_found() -> CosmosResourceNotFoundError:
    return CosmosResourceNotFoundError(status_code=404, message="not found")


def batch_error(status: int) -> CosmosBatchOperationError:
    return CosmosBatchOperationError(
        error_index=0, headers={}, status_code=status, message="", operation_responses=[]
    )


class FakeContainer:
    """Records every call; answers queries from ``results`` (one list of rows per query) and reads from ``items``."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.results: list[list[dict[str, Any]]] = []
        self.items: dict[str, dict[str, Any]] = {}
        self.batch_errors: list[Exception] = []

    def query_items(
        self, query: str, parameters: list | None = None, partition_key: str | list | None = None
    ):
        self.calls.append(("query", query, parameters, partition_key))
        rows = self.results.pop(0)

        async def iterate():
            for row in rows:
                yield row

        return iterate()

    async def read_item(self, item: str, partition_key: str | list) -> dict[str, Any]:
        self.calls.append(("read", item, partition_key))
        if item not in self.items:
            raise not_found()
        return self.items[item]

    async def execute_item_batch(self, operations: list, partition_key: str | list) -> list:
        self.calls.append(("batch", operations, partition_key))
        if self.batch_errors:
            raise self.batch_errors.pop(0)
        return []

    async def upsert_item(self, body: dict[str, Any]) -> None:
        self.calls.append(("upsert", body))

    async def delete_item(self, item: str, partition_key: str) -> None:
        self.calls.append(("delete", item, partition_key))
        if item not in self.items:
            raise not_found()


class FakeDatabase:
    def __init__(
        self,
        container: FakeContainer,
        existing_policy: dict | None,
        error: Exception | None,
        existing_partition_key: list[str] | None,
    ):
        self.container, self.existing_policy, self.error = container, existing_policy, error
        self.existing_partition_key = existing_partition_key
        self.requests: list[dict[str, Any]] = []

    async def create_container_if_not_exists(self, **kwargs: Any):
        self.requests.append(kwargs)
        if self.error:
            raise self.error
        policy = self.existing_policy or kwargs.get("vector_embedding_policy")
        paths = self.existing_partition_key or kwargs["partition_key"]["paths"]
        return self.container, {
            "id": kwargs["id"],
            "vectorEmbeddingPolicy": policy,
            "partitionKey": {"paths": paths},
        }


class FakeClosable:
    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1


class FakeClient(FakeClosable):
    def __init__(self, database: FakeDatabase):
        super().__init__()
        self.database = database
        self.database_names: list[str] = []

    def get_database_client(self, name: str) -> FakeDatabase:
        self.database_names.append(name)
        return self.database


@pytest.fixture
def account(monkeypatch):
    """Routes the stores' connect() to fakes; returns a function that sets them up for one test."""

    def install(
        existing_policy: dict | None = None,
        error: Exception | None = None,
        existing_partition_key: list[str] | None = None,
    ):
        container = FakeContainer()
        database = FakeDatabase(container, existing_policy, error, existing_partition_key)
        client, credential = FakeClient(database), FakeClosable()
        monkeypatch.setattr(
            CosmosAccount, "connect", classmethod(lambda cls, endpoint, client_id: cls(client, credential))
        )
        return container, client, credential

    return install


async def test_vector_container_is_opened_with_the_vector_policies(account):
    _, client, _ = account()
    store = await CosmosVectorStore.connect(
        "https://acct.documents.azure.com", "agentstage", 384, container="memories"
    )
    (request,) = client.database.requests
    assert client.database_names == ["agentstage"]
    assert request["id"] == "memories"
    assert request["partition_key"]["paths"] == ["/namespace"]
    assert request["vector_embedding_policy"] == {
        "vectorEmbeddings": [
            {"path": "/embedding", "dataType": "float32", "distanceFunction": "cosine", "dimensions": 384}
        ]
    }
    assert request["indexing_policy"]["vectorIndexes"] == [{"path": "/embedding", "type": "quantizedFlat"}]
    assert {"path": "/embedding/*"} in request["indexing_policy"]["excludedPaths"]
    await store.close()


async def test_container_for_other_dimensions_is_refused_and_the_client_closed(account):
    _, client, credential = account(existing_policy=vector_embedding_policy(1536))
    with pytest.raises(DimensionMismatchError, match="1536-dimensional.*384"):
        await CosmosVectorStore.connect("https://acct", "agentstage", 384, container="memories")
    assert (client.closed, credential.closed) == (1, 1)


async def test_missing_container_that_rbac_cannot_create_explains_what_to_do(account):
    account(error=CosmosHttpResponseError(status_code=403, message="Forbidden"))
    with pytest.raises(RuntimeError, match=r"create it in the infrastructure with partition key \['/tenant'"):
        await CosmosConversationStore.connect("https://acct", "agentstage", container="conversations")


async def test_conversations_are_partitioned_by_tenant_then_caller_then_conversation(account):
    _, client, _ = account()
    await CosmosConversationStore.connect("https://acct", "agentstage", container="conversations-by-owner")
    (request,) = client.database.requests
    assert request["partition_key"]["paths"] == ["/tenant", "/caller", "/conversationId"]
    assert request["partition_key"]["kind"] == "MultiHash"


async def test_a_container_of_history_without_owners_is_refused(account):
    """History written before conversations had owners has no owner: no caller may read it."""
    _, client, credential = account(existing_partition_key=["/conversationId"])
    with pytest.raises(
        RuntimeError, match="written before conversations had owners, which no caller may read"
    ):
        await CosmosConversationStore.connect("https://acct", "agentstage", container="conversations")
    assert (client.closed, credential.closed) == (1, 1)


async def test_query_sends_parameterised_vector_distance_sql(account):
    container, _, _ = account()
    store = await CosmosVectorStore.connect("https://acct", "db", 3, container="memories")
    container.results.append([{"itemId": "a/1", "text": "t", "metadata": {"kind": "note"}, "score": 0.75}])

    hits = await store.query("agent-a", [1, 0, 0], top_k=4, where={"kind": "note", "page": 2})

    (_, text, parameters, partition_key) = container.calls[-1]
    assert text == (
        "SELECT TOP @top_k c.itemId, c.text, c.metadata, VectorDistance(c.embedding, @embedding) AS score"
        ' FROM c WHERE true AND c.metadata["kind"] = @where0 AND c.metadata["page"] = @where1'
        " ORDER BY VectorDistance(c.embedding, @embedding)"
    )
    assert parameters == [
        {"name": "@top_k", "value": 4},
        {"name": "@embedding", "value": [1.0, 0.0, 0.0]},
        {"name": "@where0", "value": "note"},
        {"name": "@where1", "value": 2},
    ]
    assert partition_key == "agent-a"
    assert [(h.id, h.score, h.metadata) for h in hits] == [("a/1", 0.75, {"kind": "note"})]


async def test_bad_requests_are_refused_before_any_call(account):
    container, _, _ = account()
    store = await CosmosVectorStore.connect("https://acct", "db", 3, container="memories")
    with pytest.raises(ValueError, match="identifier"):
        await store.query("ns", [1, 0, 0], where={'x"] OR true OR c["y': 1})
    with pytest.raises(DimensionMismatchError):
        await store.upsert("ns", [VectorItem("a", [1, 0, 0], "ok"), VectorItem("b", [1, 0], "short")])
    assert await store.query("ns", [1, 0, 0], top_k=0) == []
    assert container.calls == []


async def test_upsert_writes_one_document_per_item_with_a_safe_id(account):
    container, _, _ = account()
    store = await CosmosVectorStore.connect("https://acct", "db", 2, container="memories")
    await store.upsert("ns", [VectorItem("docs/a?b#1", [0.5, 1], "text", {"page": 1})])
    assert container.calls == [
        (
            "upsert",
            {
                "id": "docs%2Fa%3Fb%231",
                "namespace": "ns",
                "itemId": "docs/a?b#1",
                "embedding": [0.5, 1.0],
                "text": "text",
                "metadata": {"page": 1},
            },
        )
    ]


async def test_delete_ignores_unknown_ids(account):
    container, _, _ = account()
    container.items["known"] = {}
    store = await CosmosVectorStore.connect("https://acct", "db", 2, container="memories")
    await store.delete("ns", ["known", "unknown"])
    assert sorted(call[1] for call in container.calls) == ["known", "unknown"]


ALICE = Owner("t-a", "alice")
PARTITION = ["t-a", "alice", "conv"]


async def test_first_append_creates_the_head_and_messages_in_one_batch(account, monkeypatch):
    monkeypatch.setattr(cosmos_module.time, "time", lambda: 1700000000.0)
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    await store.append(
        ALICE, "conv", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    )

    (_, operations, partition_key) = container.calls[-1]
    assert partition_key == PARTITION
    owner = {"tenant": "t-a", "caller": "alice", "conversationId": "conv"}
    assert operations == [
        ("create", ({"id": "head", **owner, "type": "head", "next": 2, "createdAt": 1700000000.0,
                     "updatedAt": 1700000000.0},)),
        ("create", ({"id": "000000000000", **owner, "type": "message", "seq": 0,
                     "message": {"role": "user", "content": "a"}},)),
        ("create", ({"id": "000000000001", **owner, "type": "message", "seq": 1,
                     "message": {"role": "assistant", "content": "b"}},)),
    ]  # fmt: skip


async def test_append_that_loses_a_race_rereads_the_head_and_retries(account):
    container, _, _ = account()
    container.items["head"] = {"id": "head", "next": 5, "_etag": "etag-5", "createdAt": 1.0, "updatedAt": 2.0}
    container.batch_errors.append(batch_error(412))
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")

    await store.append(ALICE, "conv", [{"role": "user", "content": "x"}])

    batches = [call for call in container.calls if call[0] == "batch"]
    reads = [call for call in container.calls if call[0] == "read"]
    assert len(batches) == len(reads) == 2 and reads[-1] == ("read", "head", PARTITION)
    replace = batches[-1][1][0]
    assert replace[0:2] == ("replace", ("head", {**replace[1][1], "next": 6, "createdAt": 1.0}))
    assert replace[1][1]["updatedAt"] > 2.0
    assert replace[2] == {"if_match_etag": "etag-5"}
    assert batches[-1][1][1][1][0]["seq"] == 5


async def test_append_does_not_retry_other_errors(account):
    container, _, _ = account()
    container.batch_errors.append(batch_error(413))
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    with pytest.raises(CosmosBatchOperationError):
        await store.append(ALICE, "conv", [{"role": "user", "content": "x"}])


async def test_history_reads_the_newest_messages_of_the_owners_conversation(account):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    container.results.append([{"message": {"content": "3"}}, {"message": {"content": "2"}}])

    assert await store.history(ALICE, "conv", limit=2) == [{"content": "2"}, {"content": "3"}]
    assert container.calls[-1] == (
        "query",
        "SELECT TOP @limit c.message FROM c WHERE c.type = 'message' ORDER BY c.seq DESC",
        [{"name": "@limit", "value": 2}],
        PARTITION,
    )
    container.results.append([])
    await store.history(ALICE, "conv")
    assert container.calls[-1][1] == "SELECT c.message FROM c WHERE c.type = 'message' ORDER BY c.seq DESC"


async def test_listing_queries_the_owners_prefix_of_the_partition_key(account):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    container.results.append([{"conversationId": "conv", "createdAt": 1.0, "updatedAt": 2.0, "next": 4}])

    [listed] = await store.conversations(ALICE, limit=5)

    assert (listed.id, listed.created_at, listed.updated_at, listed.messages) == ("conv", 1.0, 2.0, 4)
    assert container.calls[-1] == (
        "query",
        (
            "SELECT TOP @limit c.conversationId, c.createdAt, c.updatedAt, c.next FROM c "
            "WHERE c.type = 'head' ORDER BY c.updatedAt DESC"
        ),
        [{"name": "@limit", "value": 5}],
        ["t-a", "alice"],
    )


async def test_a_page_after_a_cursor_reads_its_instants_ties_then_older_ones_and_completes_the_last_instant(
    account,
):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    fields = "c.conversationId, c.createdAt, c.updatedAt, c.next FROM c WHERE c.type = 'head'"
    container.results += [
        [_head("b", 5.0), _head("d", 5.0), _head("a", 5.0)],  # the cursor's instant, in no order
        [_head("w", 4.0)],  # older: the TOP (1) was reached, so it may have cut instant 4.0's ties
        [_head("w", 4.0), _head("x", 4.0)],  # instant 4.0, whole
    ]

    listed = await store.conversations(ALICE, limit=3, after=json.dumps([5.0, "c"]))

    assert [c.id for c in listed] == ["b", "a", "x"], "ties by id, descending: w comes next"
    assert json.loads(listed[-1].cursor) == [4.0, "x"]
    assert [call[1:] for call in container.calls[-3:]] == [
        (
            f"SELECT {fields} AND c.updatedAt = @updated",
            [{"name": "@updated", "value": 5.0}],
            ["t-a", "alice"],
        ),
        (
            f"SELECT TOP @limit {fields} AND c.updatedAt < @updated ORDER BY c.updatedAt DESC",
            [{"name": "@updated", "value": 5.0}, {"name": "@limit", "value": 1}],
            ["t-a", "alice"],
        ),
        (
            f"SELECT {fields} AND c.updatedAt = @updated",
            [{"name": "@updated", "value": 4.0}],
            ["t-a", "alice"],
        ),
    ]


def _head(conversation_id: str, updated: float) -> dict[str, object]:
    return {"conversationId": conversation_id, "createdAt": 1.0, "updatedAt": updated, "next": 1}


async def test_delete_removes_every_document_of_the_conversation_in_batches(account):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    rows = [{"id": "head"}] + [{"id": f"{i:012d}"} for i in range(150)]
    container.results += [[{**row, "caller": "alice", "conversationId": "conv"} for row in rows], []]

    assert await store.delete(ALICE, "conv") is True

    assert container.calls[0] == (
        "query",
        "SELECT c.id, c.caller, c.conversationId, c.type FROM c",
        None,
        PARTITION,
    )
    batches = [call for call in container.calls if call[0] == "batch"]
    assert [len(b[1]) for b in batches] == [100, 51]
    assert batches[0][1][0] == ("delete", ("head",)) and batches[0][2] == PARTITION


async def test_deleting_a_tenant_queries_its_prefix_and_deletes_each_conversation_in_its_partition(account):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    container.results += [
        [
            {"id": "head", "caller": "alice", "conversationId": "c1"},
            {"id": "head", "caller": "bob", "conversationId": "c1"},
        ],
        [],
    ]

    assert await store.delete_tenant("t-a") == 2

    assert container.calls[0][3] == ["t-a"]
    assert [call[2] for call in container.calls if call[0] == "batch"] == [
        ["t-a", "alice", "c1"],
        ["t-a", "bob", "c1"],
    ]


async def test_close_closes_client_and_credential_once(account):
    _, client, credential = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    await store.close()
    await store.close()
    assert (client.closed, credential.closed) == (1, 1)


async def test_identity_is_the_managed_identity_when_a_client_id_is_set():
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    managed = CosmosAccount.connect(
        "https://acct.documents.azure.com:443/", "00000000-0000-0000-0000-000000000001"
    )
    default = CosmosAccount.connect("https://acct.documents.azure.com:443/", None)
    try:
        assert isinstance(managed._credential, ManagedIdentityCredential)
        assert isinstance(default._credential, DefaultAzureCredential)
    finally:
        await managed.close()
        await default.close()


def test_policies_are_plain_json():
    assert vector_indexing_policy()["indexingMode"] == "consistent"
    assert cosmos_module.document_id("plain-id") == "plain-id"
