"""Azure AI Search as the knowledge index (``azure-search-documents``, async), with Entra ID only.

The runtime never holds an API key: it authenticates with the user-assigned managed identity named by
``identity_client_id`` when set, and ``DefaultAzureCredential`` otherwise (``az login`` on a laptop). Two
roles use the index, with different rights:

* the ingestion worker (``manage_index=True``) holds *Search Service Contributor*, which creates and updates
  the index definition (:func:`index_definition`) at connect, and *Search Index Data Contributor* to write;
* agents hold *Search Index Data Reader*, which can query but cannot read index definitions, so they check
  the index with a query that matches nothing (a missing index and the wrong embedding size both show).

One search document per chunk, keyed by :attr:`Chunk.key`; a document's lowest-numbered chunk carries
``first_chunk`` (numbering need not start at 0), so listing documents reads one chunk per document.
Readers are trimmed inside the query's ``filter`` (``readers/any(...)``), so ``top`` readable passages
come back when they exist. AI Search ranks keyword queries with BM25 over text, title and headings
(English analyzer), vector queries by cosine similarity (HNSW), and hybrid queries with its own reciprocal
rank fusion; scores are the service's ``@search.score``.

Writes are near real time: the service makes a document searchable about a second after accepting it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent_runtime.azure_credential import async_credential
from agent_runtime.memory.common import CloseOnce, DimensionMismatchError, check_id

from .base import EVERYONE, Chunk, KnowledgeQuery, Passage
from .common import check_chunks, check_query

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.core.exceptions import HttpResponseError
    from azure.search.documents.aio import SearchClient
    from azure.search.documents.indexes.models import SearchIndex

READER_ROLE = "Search Index Data Reader"
WRITER_ROLE = "Search Index Data Contributor"
ADMIN_ROLE = "Search Service Contributor"
VECTOR_PROFILE = "embedding-cosine"
VECTOR_ALGORITHM = "embedding-hnsw"
ANALYZER = "en.lucene"
DELIMITER = "|"
"""Separates principals in ``search.in``; a principal containing it is matched with its own ``eq``."""
SEARCHED_FIELDS = ["text", "title", "headings"]
PASSAGE_FIELDS = ["document_id", "chunk", "text", "uri", "title", "headings"]
_PAGE = 1000  # the most results the service returns in one response
_UPLOAD_BATCH = 100  # 100 chunks of 4,096 dimensions stay well under the 16 MB request limit
_DELETE_BATCH = 1000  # the most actions in one indexing request
_SYNTAX = re.compile(r"([^\w\s])")
_INDEX_DIMENSION = re.compile(r"dimension of '(\d+)'")


class KnowledgeIndexError(RuntimeError):
    """The search service refused a request; the message says what to change (a role, the index)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def index_definition(name: str, dimensions: int) -> SearchIndex:
    """The index the ingestion worker creates: one document per chunk, vectors stored but never returned.

    ``id`` is sortable and filterable because listing every document pages by key range (``skip`` stops at
    100,000); ``first_chunk`` marks the one chunk per document that such a listing reads.
    """
    from azure.search.documents.indexes.models import (
        HnswAlgorithmConfiguration,
        HnswParameters,
        SearchableField,
        SearchField,
        SearchIndex,
        SimpleField,
        VectorSearch,
        VectorSearchProfile,
    )

    return SearchIndex(
        name=name,
        fields=[
            SimpleField(name="id", type="Edm.String", key=True, filterable=True, sortable=True),
            SimpleField(name="document_id", type="Edm.String", filterable=True),
            SimpleField(name="chunk", type="Edm.Int32", filterable=True, sortable=True),
            SimpleField(name="first_chunk", type="Edm.Boolean", filterable=True, hidden=True),
            SearchableField(name="text", analyzer_name=ANALYZER),
            SearchableField(name="title", analyzer_name=ANALYZER),
            SearchableField(name="headings", collection=True, analyzer_name=ANALYZER),
            SimpleField(name="uri", type="Edm.String"),
            SimpleField(name="content_hash", type="Edm.String", filterable=True),
            SimpleField(name="readers", type="Collection(Edm.String)", filterable=True),
            SearchField(
                name="embedding",
                type="Collection(Edm.Single)",
                searchable=True,
                retrievable=False,
                stored=True,
                vector_search_dimensions=dimensions,
                vector_search_profile_name=VECTOR_PROFILE,
            ),
        ],
        vector_search=VectorSearch(
            algorithms=[
                HnswAlgorithmConfiguration(name=VECTOR_ALGORITHM, parameters=HnswParameters(metric="cosine"))
            ],
            profiles=[
                VectorSearchProfile(name=VECTOR_PROFILE, algorithm_configuration_name=VECTOR_ALGORITHM)
            ],
        ),
    )


def odata_string(value: str) -> str:
    """An OData string literal: quoted, with ``'`` doubled, so no value can end the literal early."""
    return "'" + value.replace("'", "''") + "'"


def readers_filter(principals: frozenset[str]) -> str:
    """Chunks readable by ``principals`` or by everyone, as a ``filter`` on the ``readers`` collection.

    The principals go into one ``search.in`` list split on :data:`DELIMITER` (fast for long lists); one that
    contains the delimiter would be split into others, so it is compared whole with ``eq`` instead.
    """
    listed = sorted({p for p in principals if p and DELIMITER not in p} | {EVERYONE})
    whole = sorted(p for p in principals if DELIMITER in p)
    conditions = [f"search.in(r, {odata_string(DELIMITER.join(listed))}, {odata_string(DELIMITER)})"]
    conditions += [f"r eq {odata_string(p)}" for p in whole]
    return f"readers/any(r: {' or '.join(conditions)})"


def search_words(text: str) -> str:
    """The caller's text as plain words: every character of the simple syntax (``+ | - " * ( ) \\`` and the
    rest) is backslash-escaped, so a question can never become an operator, a phrase or a prefix."""
    return _SYNTAX.sub(r"\\\1", text)


def search_documents(document_id: str, chunks: Sequence[Chunk], dimensions: int) -> list[dict[str, Any]]:
    """The search documents of a whole replacement, checked (as every backend checks) before any write."""
    embeddings = check_chunks(document_id, chunks, dimensions)
    first = min(c.index for c in chunks)
    return [
        {
            "id": c.key,
            "document_id": c.document_id,
            "chunk": c.index,
            "first_chunk": c.index == first,
            "text": c.text,
            "title": c.title,
            "headings": list(c.headings),
            "uri": c.uri,
            "content_hash": c.content_hash,
            "readers": sorted(c.readers),
            "embedding": embedding,
        }
        for c, embedding in zip(chunks, embeddings, strict=True)
    ]


def _batches(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class AISearchKnowledgeIndex:
    """Chunks as documents of one AI Search index; see the module docstring for roles and ranking."""

    def __init__(
        self,
        endpoint: str,
        index_name: str,
        dimensions: int,
        client: SearchClient,
        owned_credential: AsyncTokenCredential | None,
    ) -> None:
        self._endpoint = endpoint
        self._name = index_name
        self._dimensions = dimensions
        self._client = client
        self._owned_credential = owned_credential
        self.close = CloseOnce(self._release)

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        index_name: str,
        dimensions: int,
        *,
        client_id: str | None = None,
        credential: AsyncTokenCredential | None = None,
        manage_index: bool = False,
        **client_options: Any,
    ) -> AISearchKnowledgeIndex:
        """Open the index: create or update its definition when ``manage_index``, otherwise check it.

        ``credential``: a token credential the caller owns (and closes); by default the managed identity
        ``client_id``, or ``DefaultAzureCredential``, owned and closed by the index. ``client_options`` go to
        the SDK clients (azure-core options such as ``connection_verify``, ``retry_total`` or ``audience``).
        """
        from azure.search.documents.aio import SearchClient

        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            raise ValueError(f"dimensions must be a positive integer, got {dimensions!r}")
        owned = async_credential(client_id) if credential is None else None
        client = SearchClient(endpoint, index_name, credential or owned, **client_options)
        index = cls(endpoint, index_name, dimensions, client, owned)
        try:
            if manage_index:
                await index._create_or_update(credential or owned, client_options)
            else:
                await index._verify()
        except BaseException:
            await index.close()
            raise
        return index

    async def _create_or_update(self, credential: Any, client_options: dict[str, Any]) -> None:
        """PUT the definition (idempotent), after refusing an index built for another embedding size."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.search.documents.indexes.aio import SearchIndexClient

        async with SearchIndexClient(self._endpoint, credential, **client_options) as admin:
            with self._service_errors("manage", ADMIN_ROLE):
                try:
                    existing = await admin.get_index(self._name)
                except ResourceNotFoundError:
                    existing = None
                if existing is not None:
                    vector = next((f for f in existing.fields or [] if f.name == "embedding"), None)
                    if vector is not None and vector.vector_search_dimensions != self._dimensions:
                        raise self._dimension_error(vector.vector_search_dimensions)
                await admin.create_or_update_index(index_definition(self._name, self._dimensions))

    async def _verify(self) -> None:
        """One query an agent's Search Index Data Reader role allows: the index must exist and take vectors
        of our size (reading the definition would need more rights). It matches nothing: no chunk is -1."""
        from azure.core.exceptions import HttpResponseError
        from azure.search.documents.models import VectorizedQuery

        probe = [1.0] + [0.0] * (self._dimensions - 1)
        try:
            rows = await self._client.search(
                vector_queries=[VectorizedQuery(vector=probe, k_nearest_neighbors=1, fields="embedding")],
                filter="chunk lt 0",
                select=["id"],
                top=1,
            )
            _ = [row async for row in rows]
        except HttpResponseError as error:
            if error.status_code != 400:
                raise self._explain(error, "query", READER_ROLE) from error
            found = _INDEX_DIMENSION.search(str(error.message))
            if found:
                raise self._dimension_error(int(found.group(1))) from error
            raise KnowledgeIndexError(
                f"Azure AI Search index {self._name!r} at {self._endpoint} does not have the fields this "
                f"runtime queries ({error.message}); the ingestion worker updates its definition on start: "
                "run it once",
                400,
            ) from error

    def _dimension_error(self, existing: int | None) -> DimensionMismatchError:
        return DimensionMismatchError(
            f"Azure AI Search index {self._name!r} holds {existing}-dimensional vectors but "
            f"AGENTSTAGE_EMBEDDING_DIMENSIONS is {self._dimensions}: use the embedding model the index was "
            "built with, or a new knowledge_index name (and re-ingest)"
        )

    async def replace_document(self, document_id: str, chunks: Sequence[Chunk]) -> None:
        """Write the new chunks, then delete the document's other chunks (found by a filtered query).

        AI Search has no transactions: an indexing request succeeds or fails per document, and there is no
        delete-by-query. Writing first (merge-or-upload replaces same-numbered chunks in place) and deleting
        the leftovers second means a concurrent reader sees the old version, a mix of both, or the new one,
        but never the document missing; a failure in between leaves leftovers that the next replace or
        delete of the document removes.
        """
        documents = search_documents(document_id, chunks, self._dimensions)
        with self._service_errors("write to", WRITER_ROLE):
            for batch in _batches(documents, _UPLOAD_BATCH):
                self._check_indexed(await self._client.merge_or_upload_documents(batch))
            kept = ",".join(d["id"] for d in documents)  # keys hold no comma: [0-9a-f-] only
            await self._delete_where(
                f"document_id eq {odata_string(document_id)} and not search.in(id, {odata_string(kept)}, ',')"
            )

    async def delete_document(self, document_id: str) -> int:
        check_id(document_id, "document id")
        with self._service_errors("delete from", WRITER_ROLE):
            return await self._delete_where(f"document_id eq {odata_string(document_id)}")

    async def _delete_where(self, condition: str) -> int:
        keys = [{"id": row["id"]} async for row in self._scan(condition, [])]
        for batch in _batches(keys, _DELETE_BATCH):
            self._check_indexed(await self._client.delete_documents(batch))
        return len(keys)

    async def document_hashes(self) -> dict[str, str]:
        with self._service_errors("query", READER_ROLE):
            return {
                row["document_id"]: row["content_hash"]
                async for row in self._scan("first_chunk eq true", ["document_id", "content_hash"])
            }

    async def document_hash(self, document_id: str) -> str | None:
        check_id(document_id, "document id")
        with self._service_errors("query", READER_ROLE):
            rows = await self._client.search(
                filter=f"document_id eq {odata_string(document_id)} and first_chunk eq true",
                select=["content_hash"],
                top=1,
            )
            found = [row["content_hash"] async for row in rows]
        return found[0] if found else None

    async def _scan(self, condition: str, fields: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Every match in key order, a page of 1,000 per request: a key range instead of ``skip``, which the
        service refuses beyond 100,000 (and which would shift under concurrent deletes)."""
        after: str | None = None
        while True:
            where = condition if after is None else f"({condition}) and id gt {odata_string(after)}"
            rows = await self._client.search(
                filter=where, order_by=["id asc"], select=["id", *fields], top=_PAGE
            )
            page = [row async for row in rows]
            for row in page:
                yield row
            if len(page) < _PAGE:
                return
            after = page[-1]["id"]

    async def search(self, query: KnowledgeQuery) -> list[Passage]:
        """One request: the words (escaped) and/or the vector, trimmed by ``filter``; AI Search fuses a
        hybrid query's two rankings itself (reciprocal rank fusion)."""
        vector = check_query(query, self._dimensions)
        words = query.text.strip() if query.mode != "vector" else ""
        if query.top_k == 0 or (query.mode == "keyword" and not words):
            return []
        options: dict[str, Any] = {
            "filter": readers_filter(query.principals),
            "select": PASSAGE_FIELDS,
            "top": query.top_k,
        }
        if words:
            options |= {
                "search_text": search_words(words),
                "query_type": "simple",
                "search_mode": "any",
                "search_fields": SEARCHED_FIELDS,
            }
        if vector is not None:
            from azure.search.documents.models import VectorizedQuery

            options["vector_queries"] = [
                VectorizedQuery(vector=vector, k_nearest_neighbors=query.top_k, fields="embedding")
            ]
        with self._service_errors("query", READER_ROLE):
            rows = await self._client.search(**options)
            return [_passage(row) async for row in rows]

    def _check_indexed(self, results: Sequence[Any]) -> None:
        """An indexing request answers per document (HTTP 207 when some failed); any failure is an error."""
        failed = [r for r in results if not r.succeeded]
        if failed:
            details = "; ".join(f"{r.key}: {r.status_code} {r.error_message}" for r in failed[:5])
            raise KnowledgeIndexError(
                f"Azure AI Search index {self._name!r} refused {len(failed)} of {len(results)} documents "
                f"({details})",
                failed[0].status_code,
            )

    @contextmanager
    def _service_errors(self, action: str, role: str) -> Iterator[None]:
        from azure.core.exceptions import HttpResponseError

        try:
            yield
        except HttpResponseError as error:
            raise self._explain(error, action, role) from error

    def _explain(self, error: HttpResponseError, action: str, role: str) -> KnowledgeIndexError:
        """What a refusal means for this index and what to do about it, naming the role it takes."""
        status, where = error.status_code, f"Azure AI Search at {self._endpoint}"
        if status == 401:
            message = (
                f"{where} did not accept this identity's Entra ID token to {action} index {self._name!r}: "
                "the service must allow role-based access, and the token must be for https://search.azure.com"
            )
        elif status == 403:
            message = (
                f"this identity may not {action} index {self._name!r} at {self._endpoint}: grant it the "
                f"{role} role on the search service (or on the index)"
            )
        elif status == 404:
            message = (
                f"Azure AI Search index {self._name!r} does not exist at {self._endpoint}: the ingestion "
                "worker creates it on start (AGENTSTAGE_KNOWLEDGE_MANAGE_INDEX=true); run it once"
            )
        elif status in (429, 503):
            message = (
                f"{where} is throttling requests to {action} index {self._name!r} (HTTP {status}) after the "
                "client's retries: lower the request rate or add replicas/partitions"
            )
        else:
            message = f"{where} failed to {action} index {self._name!r} (HTTP {status}): {error.message}"
        return KnowledgeIndexError(message, status)

    async def _release(self) -> None:
        await self._client.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()


def _passage(row: dict[str, Any]) -> Passage:
    return Passage(
        document_id=row["document_id"],
        index=row["chunk"],
        text=row.get("text") or "",
        uri=row.get("uri") or "",
        title=row.get("title") or "",
        headings=tuple(row.get("headings") or ()),
        score=float(row["@search.score"]),
    )
