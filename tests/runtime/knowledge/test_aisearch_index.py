"""The Azure AI Search knowledge index, through the real async SDK, against the local search service.

The shared contract runs on the local server over HTTPS with a static token, as the SDK would talk to the
service; the tests below it pin what is particular to AI Search: the index definition, what an identity
with query rights only sees at connect, the filter that trims by readers, paging, and refusals.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from azure.search.documents.aio import SearchClient
from contract import DIMENSIONS, KnowledgeIndexContract, ask, chunk, document, keys, version_hash

from agent_runtime.knowledge import aisearch
from agent_runtime.knowledge.aisearch import AISearchKnowledgeIndex, KnowledgeIndexError, search_documents
from agent_runtime.knowledge.base import KnowledgeIndex
from agent_runtime.memory import DimensionMismatchError
from agent_runtime.testing.aisearch import READER, AISearchServer
from agent_runtime.testing.cosmos import StaticTokenCredential

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def search() -> Iterator[AISearchServer]:
    with AISearchServer() as server:
        yield server


async def connect(
    search: AISearchServer,
    name: str,
    dimensions: int = DIMENSIONS,
    *,
    token: str = "local-token",
    **options: Any,
) -> AISearchKnowledgeIndex:
    """An index on the local server, as the runtime connects it (retries off: refusals show at once)."""
    return await AISearchKnowledgeIndex.connect(
        search.url,
        name,
        dimensions,
        credential=StaticTokenCredential(token),
        connection_verify=search.certificate,
        retry_total=0,
        **options,
    )


def fresh_name() -> str:
    return f"kb-{uuid.uuid4().hex[:12]}"


class TestAISearch(KnowledgeIndexContract):
    @pytest.fixture
    async def index(self, search: AISearchServer) -> AsyncIterator[KnowledgeIndex]:
        index = await connect(search, fresh_name(), manage_index=True)
        yield index
        await index.close()


class CountingCredential(StaticTokenCredential):
    """Records the scopes tokens are asked for and how often it is closed."""

    def __init__(self, token: str = "local-token") -> None:
        super().__init__(token)
        self.scopes: list[tuple[str, ...]] = []
        self.closed = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return await super().get_token(*scopes, **kwargs)

    async def close(self) -> None:
        self.closed += 1


async def bodies(search: AISearchServer, index: str, operation: str, since: int) -> list[Any]:
    """The JSON bodies of the requests to one of ``index``'s operations after request number ``since``."""
    return [r.body for r in search.requests[since:] if r.path == f"/indexes('{index}')/docs/{operation}"]


# --- connecting --------------------------------------------------------------------------------------------


async def test_the_ingestion_worker_creates_the_index_and_agents_find_it(search: AISearchServer) -> None:
    name, credential = fresh_name(), CountingCredential()
    worker = await connect(search, name, manage_index=True)
    agent = await AISearchKnowledgeIndex.connect(
        search.url, name, DIMENSIONS, credential=credential, connection_verify=search.certificate
    )
    await worker.close()
    await agent.close()

    stored = search.definition(name)
    fields = {f["name"]: f for f in stored["fields"]}
    assert fields["id"]["key"] and fields["id"]["sortable"] and fields["id"]["filterable"]
    assert (fields["embedding"]["dimensions"], fields["embedding"]["retrievable"]) == (DIMENSIONS, False)
    assert {n for n, f in fields.items() if f["searchable"] and f["analyzer"] == "en.lucene"} == {
        "text",
        "title",
        "headings",
    }
    assert fields["readers"]["type"] == "Collection(Edm.String)" and fields["readers"]["filterable"]
    assert stored["vectorSearch"]["algorithms"][0]["hnswParameters"]["metric"] == "cosine"
    assert credential.scopes and set(credential.scopes) == {("https://search.azure.com/.default",)}
    assert credential.closed == 0  # the caller's credential is the caller's to close


async def test_connecting_the_worker_again_keeps_the_documents(search: AISearchServer) -> None:
    name = fresh_name()
    first = await connect(search, name, manage_index=True)
    await first.replace_document("guide", document("guide", ["alpha one"]))
    await first.close()

    again = await connect(search, name, manage_index=True)
    try:
        assert await again.document_hashes() == {"guide": version_hash("guide")}
    finally:
        await again.close()


async def test_an_agent_without_the_index_is_told_to_run_the_ingestion_worker(search: AISearchServer) -> None:
    credential = CountingCredential()
    with pytest.raises(
        KnowledgeIndexError, match="does not exist .*the ingestion worker creates it on start"
    ):
        await AISearchKnowledgeIndex.connect(
            search.url,
            "never-created",
            DIMENSIONS,
            credential=credential,
            connection_verify=search.certificate,
        )
    assert search.definition("never-created") is None
    assert credential.closed == 0


@pytest.mark.parametrize("manage_index", [True, False], ids=["worker", "agent"])
async def test_an_index_of_other_dimensions_is_refused_naming_both(
    search: AISearchServer, manage_index: bool
) -> None:
    name = fresh_name()
    await (await connect(search, name, 8, manage_index=True)).close()
    before = len(search.requests)

    with pytest.raises(
        DimensionMismatchError, match=rf"index '{name}' holds 8-dimensional .* is {DIMENSIONS}"
    ):
        await connect(search, name, manage_index=manage_index)

    fields = {f["name"]: f for f in search.definition(name)["fields"]}
    assert fields["embedding"]["dimensions"] == 8
    assert all(r.method != "PUT" for r in search.requests[before:])


async def test_an_agent_needs_only_the_reader_role_and_is_told_which_role_is_missing() -> None:
    with AISearchServer(roles={"reader": [READER]}) as search:
        name = fresh_name()
        worker = await connect(search, name, manage_index=True)
        await worker.replace_document("guide", document("guide", ["alpha one"]))
        await worker.close()

        agent = await connect(search, name, token="reader")
        try:
            assert keys(await agent.search(ask("alpha", mode="keyword"))) == [("guide", 0)]
            with pytest.raises(KnowledgeIndexError, match="grant it the Search Index Data Contributor role"):
                await agent.replace_document("guide", document("guide", ["beta"]))
        finally:
            await agent.close()
        with pytest.raises(KnowledgeIndexError, match="grant it the Search Service Contributor role"):
            await connect(search, name, token="reader", manage_index=True)


async def test_an_owned_credential_is_closed_once_even_when_connecting_fails(
    search: AISearchServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[str | None, CountingCredential]] = []

    def credential_for(client_id: str | None) -> CountingCredential:
        made.append((client_id, CountingCredential()))
        return made[-1][1]

    monkeypatch.setattr(aisearch, "async_credential", credential_for)
    name = fresh_name()
    await (await connect(search, name, manage_index=True)).close()
    options = {"client_id": "00000000-0000-0000-0000-0000000000c1", "connection_verify": search.certificate}

    index = await AISearchKnowledgeIndex.connect(search.url, name, DIMENSIONS, **options)
    await index.close()
    await index.close()
    with pytest.raises(KnowledgeIndexError):
        await AISearchKnowledgeIndex.connect(search.url, "never-created", DIMENSIONS, **options)

    assert [(client_id, c.closed) for client_id, c in made] == [(options["client_id"], 1)] * 2


# --- what goes on the wire ---------------------------------------------------------------------------------


async def test_hostile_principals_stay_inside_their_string_literals(search: AISearchServer) -> None:
    index = await connect(search, fresh_name(), manage_index=True)
    hostile = frozenset({"o'brien", "team, x", "a|b", "x') or true or ('", "  "})
    await index.replace_document("secret", document("secret", ["zyzzyva"], readers=["board"]))
    await index.replace_document("odd", document("odd", ["zyzzyva"], readers=["a|b"]))
    before = len(search.requests)
    try:
        found = await index.search(ask("zyzzyva", principals=hostile, mode="keyword"))
    finally:
        await index.close()

    (body,) = [b for r in search.requests[before:] if (b := r.body) and "search" in b]
    # quotes doubled inside the literals; the principal holding the delimiter compared whole
    assert body["filter"] == (
        "readers/any(r: search.in(r, '  |*|o''brien|team, x|x'') or true or (''', '|') or r eq 'a|b')"
    )
    assert keys(found) == [("odd", 0)]


async def test_keyword_vector_and_hybrid_queries_as_sent(search: AISearchServer) -> None:
    name = fresh_name()
    index = await connect(search, name, manage_index=True)
    await index.replace_document("guide", document("guide", ["alpha one"]))
    before = len(search.requests)
    try:
        for mode in ("keyword", "vector", "hybrid"):
            await index.search(ask('say "hi" -now* (a|b)', mode=mode, top_k=3))
    finally:
        await index.close()

    keyword, vector, hybrid = await bodies(search, name, "search.post.search", before)
    readers = "readers/any(r: search.in(r, '*', '|'))"
    shared = {"filter": readers, "select": "document_id,chunk,text,uri,title,headings", "top": 3}
    text = {
        "search": r"say \"hi\" \-now\* \(a\|b\)",
        "queryType": "simple",
        "searchMode": "any",
        "searchFields": "text,title,headings",
    }
    assert keyword == {**shared, **text}
    (sent,) = vector.pop("vectorQueries")
    assert vector == shared  # no search text: a pure vector query
    assert (sent["kind"], sent["k"], sent["fields"], len(sent["vector"])) == (
        "vector",
        3,
        "embedding",
        DIMENSIONS,
    )
    assert hybrid == {**shared, **text, "vectorQueries": [sent]}  # one request: the service fuses


async def test_replace_writes_first_then_deletes_the_documents_other_chunks(search: AISearchServer) -> None:
    name = fresh_name()
    index = await connect(search, name, manage_index=True)
    await index.replace_document("guide", document("guide", ["one", "two", "three"]))
    before = len(search.requests)
    try:
        await index.replace_document("guide", [chunk("guide", 5, "five", version="v2")])
    finally:
        await index.close()

    written, deleted = await bodies(search, name, "search.index", before)
    (lookup,) = await bodies(search, name, "search.post.search", before)
    assert [a["@search.action"] for a in written["value"]] == ["mergeOrUpload"]
    assert (written["value"][0]["chunk"], written["value"][0]["first_chunk"]) == (5, True)
    kept = chunk("guide", 5, "five").key
    assert lookup["filter"] == f"document_id eq 'guide' and not search.in(id, '{kept}', ',')"
    assert sorted(a["id"] for a in deleted["value"]) == sorted(chunk("guide", i, "").key for i in range(3))
    assert {a["@search.action"] for a in deleted["value"]} == {"delete"}
    assert [d["chunk"] for d in search.documents(name)] == [5]


async def test_document_hashes_pages_past_1000_by_key_range(search: AISearchServer) -> None:
    name = fresh_name()
    index = await connect(search, name, manage_index=True)
    ids = [f"doc-{i:04d}" for i in range(2100)]
    # What 2,100 replace_document calls would write, uploaded 1,000 at a time (one by one is slow here).
    rows = [row for i in ids for row in search_documents(i, document(i, ["x", "y"]), DIMENSIONS)]
    credential = StaticTokenCredential()
    async with SearchClient(search.url, name, credential, connection_verify=search.certificate) as writer:
        for start in range(0, len(rows), 1000):
            await writer.upload_documents(rows[start : start + 1000])
    before = len(search.requests)
    try:
        hashes = await index.document_hashes()
    finally:
        await index.close()

    assert hashes == {i: version_hash(i) for i in ids}
    pages = await bodies(search, name, "search.post.search", before)
    assert [(p["top"], p["orderby"], "skip" in p) for p in pages] == [(1000, "id asc", False)] * 3
    firsts = sorted(row["id"] for row in rows if row["first_chunk"])
    assert [p["filter"] for p in pages] == [
        "first_chunk eq true",
        f"(first_chunk eq true) and id gt '{firsts[999]}'",
        f"(first_chunk eq true) and id gt '{firsts[1999]}'",
    ]


# --- refusals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "did not accept this identity's Entra ID token to query index"),
        (403, "may not query index .*grant it the Search Index Data Reader role"),
        (429, r"is throttling requests to query index .*\(HTTP 429\)"),
        (503, r"is throttling requests to query index .*\(HTTP 503\)"),
        (500, r"failed to query index .*\(HTTP 500\)"),
    ],
)
async def test_service_refusals_name_the_endpoint_the_index_and_the_remedy(
    search: AISearchServer, status: int, message: str
) -> None:
    name = fresh_name()
    index = await connect(search, name, manage_index=True)
    search.fail_next.append(status)
    try:
        with pytest.raises(KnowledgeIndexError, match=message) as refused:
            await index.search(ask("alpha"))
    finally:
        await index.close()
    assert refused.value.status == status
    assert search.url in str(refused.value) and repr(name) in str(refused.value)
