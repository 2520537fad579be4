"""The Cosmos DB backend against a fake container: what it sends, not what a live service answers.

No Cosmos DB emulator runs here (the Linux emulator is a container image and there is no Docker), so these
tests pin the requests themselves: container policies, the parameterised SQL, document bodies and the
optimistic-concurrency protocol of appends. The contract suite's semantics are not exercised live.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.cosmos.exceptions import (
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceNotFoundError,
)

from agent_runtime.memory import DimensionMismatchError, VectorItem
from agent_runtime.memory import cosmos as cosmos_module
from agent_runtime.memory.cosmos import (
    CosmosConversationStore,
    CosmosVectorStore,
    _Account,
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

    def query_items(self, query: str, parameters: list | None = None, partition_key: str | None = None):
        self.calls.append(("query", query, parameters, partition_key))
        rows = self.results.pop(0)

        async def iterate():
            for row in rows:
                yield row

        return iterate()

    async def read_item(self, item: str, partition_key: str) -> dict[str, Any]:
        self.calls.append(("read", item, partition_key))
        if item not in self.items:
            raise not_found()
        return self.items[item]

    async def execute_item_batch(self, operations: list, partition_key: str) -> list:
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
    def __init__(self, container: FakeContainer, existing_policy: dict | None, error: Exception | None):
        self.container, self.existing_policy, self.error = container, existing_policy, error
        self.requests: list[dict[str, Any]] = []

    async def create_container_if_not_exists(self, **kwargs: Any):
        self.requests.append(kwargs)
        if self.error:
            raise self.error
        policy = self.existing_policy or kwargs.get("vector_embedding_policy")
        return self.container, {"id": kwargs["id"], "vectorEmbeddingPolicy": policy}


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

    def install(existing_policy: dict | None = None, error: Exception | None = None):
        container = FakeContainer()
        client, credential = FakeClient(FakeDatabase(container, existing_policy, error)), FakeClosable()
        monkeypatch.setattr(
            _Account, "connect", classmethod(lambda cls, endpoint, client_id: cls(client, credential))
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
    with pytest.raises(
        RuntimeError, match="create it in the infrastructure with partition key /conversationId"
    ):
        await CosmosConversationStore.connect("https://acct", "agentstage", container="conversations")


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


async def test_first_append_creates_the_head_and_messages_in_one_batch(account):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    await store.append("conv", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])

    (_, operations, partition_key) = container.calls[-1]
    assert partition_key == "conv"
    assert operations == [
        ("create", ({"id": "head", "conversationId": "conv", "type": "head", "next": 2},)),
        ("create", ({"id": "000000000000", "conversationId": "conv", "type": "message", "seq": 0,
                     "message": {"role": "user", "content": "a"}},)),
        ("create", ({"id": "000000000001", "conversationId": "conv", "type": "message", "seq": 1,
                     "message": {"role": "assistant", "content": "b"}},)),
    ]  # fmt: skip


async def test_append_that_loses_a_race_rereads_the_head_and_retries(account):
    container, _, _ = account()
    container.items["head"] = {"id": "head", "next": 5, "_etag": "etag-5"}
    container.batch_errors.append(batch_error(412))
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")

    await store.append("conv", [{"role": "user", "content": "x"}])

    batches = [call for call in container.calls if call[0] == "batch"]
    reads = [call for call in container.calls if call[0] == "read"]
    assert len(batches) == len(reads) == 2
    replace = batches[-1][1][0]
    assert replace[0:2] == (
        "replace",
        ("head", {"id": "head", "conversationId": "conv", "type": "head", "next": 6}),
    )
    assert replace[2] == {"if_match_etag": "etag-5"}
    assert batches[-1][1][1][1][0]["seq"] == 5


async def test_append_does_not_retry_other_errors(account):
    container, _, _ = account()
    container.batch_errors.append(batch_error(413))
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    with pytest.raises(CosmosBatchOperationError):
        await store.append("conv", [{"role": "user", "content": "x"}])


async def test_history_reads_the_newest_messages_and_returns_them_oldest_first(account):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    container.results.append([{"message": {"content": "3"}}, {"message": {"content": "2"}}])

    assert await store.history("conv", limit=2) == [{"content": "2"}, {"content": "3"}]
    assert container.calls[-1] == (
        "query",
        "SELECT TOP @limit c.message FROM c WHERE c.type = 'message' ORDER BY c.seq DESC",
        [{"name": "@limit", "value": 2}],
        "conv",
    )
    container.results.append([])
    await store.history("conv")
    assert container.calls[-1][1] == "SELECT c.message FROM c WHERE c.type = 'message' ORDER BY c.seq DESC"


async def test_delete_removes_every_document_of_the_conversation_in_batches(account):
    container, _, _ = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    container.results += [[{"id": "head"}] + [{"id": f"{i:012d}"} for i in range(150)], []]

    await store.delete("conv")

    batches = [call[1] for call in container.calls if call[0] == "batch"]
    assert [len(b) for b in batches] == [100, 51]
    assert batches[0][0] == ("delete", ("head",))


async def test_close_closes_client_and_credential_once(account):
    _, client, credential = account()
    store = await CosmosConversationStore.connect("https://acct", "db", container="conversations")
    await store.close()
    await store.close()
    assert (client.closed, credential.closed) == (1, 1)


async def test_identity_is_the_managed_identity_when_a_client_id_is_set():
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    managed = _Account.connect(
        "https://acct.documents.azure.com:443/", "00000000-0000-0000-0000-000000000001"
    )
    default = _Account.connect("https://acct.documents.azure.com:443/", None)
    try:
        assert isinstance(managed._credential, ManagedIdentityCredential)
        assert isinstance(default._credential, DefaultAzureCredential)
    finally:
        await managed.close()
        await default.close()


def test_policies_are_plain_json():
    assert vector_indexing_policy()["indexingMode"] == "consistent"
    assert cosmos_module.document_id("plain-id") == "plain-id"
