"""The knowledge index's contract: chunks of documents, searched by what a caller may read.

The knowledge index is separate from per-conversation memory (:mod:`agent_runtime.memory`): it holds the
organisation's documents, ingested by a worker (:mod:`agent_runtime.knowledge.ingest`) and shared by every
agent, and each chunk carries the readers its document allows. A search is always trimmed to the caller's
principals inside the backend's query (never filtered afterwards, which would leak through ``top_k``).

Backends: SQLite (FTS5 + vectors, embedded default), PostgreSQL + pgvector (full-text + HNSW) and Azure AI
Search (its own hybrid ranking). Every backend passes the same contract suite
(``tests/runtime/knowledge/contract.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

EVERYONE = "*"
"""The reader that every authenticated caller matches: a document readable by all of them says so."""

SearchMode = Literal["hybrid", "keyword", "vector"]


@dataclass(frozen=True)
class Chunk:
    """One token-bounded piece of a document, embedded, as the index stores it.

    ``document_id`` is the source's stable name of the document (a blob name, an S3 key, a relative
    path); ``index`` the chunk's position in it; ``content_hash`` the document's fingerprint: a SHA-256 of its
    bytes and of everything else its chunks depend on (readers, chunking, embedding model), the same for
    all its chunks, which tells whether a redelivered event changes anything. ``headings`` is
    the path of headings the chunk sits under (``("Install", "On Linux")``), kept so that a passage can be
    cited and so that keyword search matches the section a chunk belongs to. ``readers`` are the groups or
    roles allowed to read the document (:data:`EVERYONE` for all callers); never empty.
    """

    document_id: str
    index: int
    text: str
    embedding: Sequence[float]
    content_hash: str
    readers: frozenset[str]
    uri: str
    title: str = ""
    headings: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """A key every backend accepts (AI Search allows only letters, digits, ``_``, ``-`` and ``=``)."""
        return chunk_key(self.document_id, self.index)


def chunk_key(document_id: str, index: int) -> str:
    return f"{hashlib.sha256(document_id.encode()).hexdigest()[:32]}-{index}"


@dataclass(frozen=True)
class Passage:
    """A search result the caller may read, with what it takes to cite it (document, URI, chunk, title)."""

    document_id: str
    index: int
    text: str
    uri: str
    title: str
    headings: tuple[str, ...]
    score: float


@dataclass(frozen=True)
class KnowledgeQuery:
    """A search: the words, their embedding, and the principals of the caller asking.

    ``principals`` are the caller's roles/groups; a chunk matches when its readers share one with them or
    include :data:`EVERYONE`. An empty ``principals`` still sees :data:`EVERYONE` documents only.
    """

    text: str
    embedding: Sequence[float]
    principals: frozenset[str]
    top_k: int = 5
    mode: SearchMode = "hybrid"


@runtime_checkable
class KnowledgeIndex(Protocol):
    """Chunks keyed by (document, chunk), replaced a whole document at a time."""

    async def replace_document(self, document_id: str, chunks: Sequence[Chunk]) -> None:
        """Make the document's chunks exactly ``chunks``: old chunks beyond the new count are removed.

        All chunks belong to ``document_id`` and share one ``content_hash``; embeddings have the index's
        dimensions (``ValueError`` otherwise, before anything is written). An empty ``chunks`` is refused:
        use :meth:`delete_document`.
        """

    async def delete_document(self, document_id: str) -> int:
        """Remove every chunk of the document; returns how many there were (0 when unknown)."""

    async def document_hashes(self) -> dict[str, str]:
        """Every indexed document's id and content hash (what a full sync of a source compares against)."""

    async def document_hash(self, document_id: str) -> str | None:
        """The indexed content hash of one document, or ``None`` when it is not indexed."""

    async def search(self, query: KnowledgeQuery) -> list[Passage]:
        """The ``top_k`` best passages the principals may read, best first.

        ``keyword``: full-text ranking over text, title and headings; ``vector``: cosine similarity;
        ``hybrid``: both fused (reciprocal rank fusion, or the service's own hybrid ranking). Trimming by
        readers happens inside the query, so ``top_k`` readable passages come back when they exist.
        """

    async def close(self) -> None:
        """Release connections; calling it again does nothing."""
