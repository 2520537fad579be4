"""Ingestion: a document in the source becomes exactly its chunks in the index, idempotently.

For each document named by an event (or by a full sync), the :class:`Ingestor` reads the source's current
state and converges the index on it:

- gone from the source → its chunks are deleted;
- unchanged (the same fingerprint: content, readers, chunking and embedding model) → nothing is written,
  so a redelivered event costs one read and no embedding tokens;
- declaring no readers and no default configured → its chunks are deleted and it is reported skipped;
- otherwise extracted, split, embedded in batches on the governed model path, and its chunks replaced.

If the document changed while it was being ingested (its version moved), it is ingested again, so two
workers racing on one document cannot leave the older text indexed. A document that can never be
ingested (unsupported type, corrupt, empty, too large) loses the chunks of its previous version and raises
:class:`PoisonDocument` with the reason, which the worker sends to the dead-letter queue instead of
retrying forever.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from agent_runtime.knowledge.base import Chunk, KnowledgeIndex
from agent_runtime.knowledge.chunking import PIPELINE_VERSION, TextChunk, count_tokens, split
from agent_runtime.knowledge.documents import DocumentSource, DocumentTooLarge, SourceDocument
from agent_runtime.knowledge.extract import ExtractionError, extract
from agent_runtime.memory.common import DimensionMismatchError

Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
"""Embeddings of a batch of texts, in order (the governed gateway path in the runtime)."""

MAX_ATTEMPTS = 3
"""Re-reads of a document that keeps changing under the worker before it settles for the last version."""

HEADING_PATH_TOKENS = 64
"""The most the title and headings embedded above a chunk cost (see :func:`embedded_text`)."""


class PoisonDocument(Exception):
    """A document that can never be ingested; ``reason`` says why and what to do; ``removed`` counts the
    chunks of its previous version, removed from the index."""

    def __init__(self, document_id: str, reason: str, removed: int = 0) -> None:
        super().__init__(f"{document_id}: {reason}")
        self.document_id = document_id
        self.reason = reason
        self.removed = removed


@dataclass(frozen=True)
class IngestOptions:
    """How documents become chunks; part of every document's fingerprint, so changing one re-ingests."""

    chunk_tokens: int = 400
    overlap_tokens: int = 60
    embedding_model: str = "text-embedding-3-small"
    dimensions: int = 384
    default_readers: frozenset[str] = frozenset()
    max_document_bytes: int = 20_000_000
    batch_size: int = 64
    concurrency: int = 4


Action = Literal["indexed", "unchanged", "removed", "skipped"]


@dataclass(frozen=True)
class Outcome:
    document_id: str
    action: Action
    chunks: int = 0
    reason: str = ""


class Ingestor:
    """Converges the index on the source, one document at a time or all of them."""

    def __init__(
        self, source: DocumentSource, index: KnowledgeIndex, embed: Embed, options: IngestOptions
    ) -> None:
        self.source = source
        self.index = index
        self._embed = embed
        self.options = options

    async def refresh(self, document_id: str) -> Outcome:
        """Make the index hold what the source holds now for ``document_id``."""
        outcome = Outcome(document_id, "unchanged")
        for _ in range(MAX_ATTEMPTS):
            try:
                document = await self.source.fetch(document_id, max_bytes=self.options.max_document_bytes)
            except DocumentTooLarge as error:
                raise await self._poisoned(document_id, str(error)) from error
            if document is None:
                return Outcome(document_id, "removed", await self.index.delete_document(document_id))
            outcome = await self._ingest(document)
            if outcome.action != "indexed" or await self.source.version(document_id) == document.version:
                return outcome
        return outcome

    async def sync(self, progress: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
        """Every document of the source refreshed, and every indexed document the source no longer has
        removed; ``progress`` is called once per document.

        Poison documents, and documents failing on their own (see :func:`_fails_alone`), are reported as
        skipped with the reason while the others go on; any other failure (the embedding endpoint or the
        index unreachable) fails the sync, after stopping the documents still in flight.
        """
        indexed = set(await self.index.document_hashes())
        present: list[str] = [document_id async for document_id in self.source.document_ids()]
        limit = asyncio.Semaphore(self.options.concurrency)

        async def one(document_id: str) -> Outcome:
            async with limit:
                try:
                    outcome = await self.refresh(document_id)
                except PoisonDocument as poison:
                    outcome = Outcome(document_id, "skipped", poison.removed, reason=poison.reason)
                except Exception as error:
                    if not _fails_alone(error):
                        raise
                    outcome = Outcome(document_id, "skipped", reason=f"{type(error).__name__}: {error}")
            progress(outcome)
            return outcome

        async def gone(document_id: str) -> Outcome:
            outcome = Outcome(document_id, "removed", await self.index.delete_document(document_id))
            progress(outcome)
            return outcome

        tasks = [asyncio.create_task(one(document_id)) for document_id in present]
        tasks += [asyncio.create_task(gone(document_id)) for document_id in sorted(indexed - set(present))]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            # gather leaves the other tasks running when one fails (or the sync is cancelled): nothing may
            # go on writing to the index after the sync has returned or raised.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _ingest(self, document: SourceDocument) -> Outcome:
        readers = document.readers if document.readers is not None else self.options.default_readers
        if not readers:
            removed = await self.index.delete_document(document.id)
            return Outcome(
                document.id,
                "skipped",
                removed,
                reason="declares no readers (set blob metadata or the S3 tag 'readers', or the folder's "
                "readers.yaml) and no default readers are configured (AGENTSTAGE_KNOWLEDGE_DEFAULT_READERS)",
            )
        fingerprint = self._fingerprint(document, readers)
        if await self.index.document_hash(document.id) == fingerprint:
            return Outcome(document.id, "unchanged")
        try:
            extracted = extract(document.content, name=document.id, media_type=document.media_type)
        except ExtractionError as error:
            raise await self._poisoned(document.id, str(error)) from error
        pieces = split(
            extracted, max_tokens=self.options.chunk_tokens, overlap_tokens=self.options.overlap_tokens
        )
        embeddings = [
            vector
            async for vector in self._embeddings([embedded_text(extracted.title, piece) for piece in pieces])
        ]
        chunks = [
            Chunk(
                document_id=document.id,
                index=piece.index,
                text=piece.text,
                embedding=embedding,
                content_hash=fingerprint,
                readers=readers,
                uri=document.uri,
                title=extracted.title,
                headings=piece.headings,
            )
            for piece, embedding in zip(pieces, embeddings, strict=True)
        ]
        await self.index.replace_document(document.id, chunks)
        return Outcome(document.id, "indexed", len(chunks))

    async def _poisoned(self, document_id: str, reason: str) -> PoisonDocument:
        """The refusal of a document that can never be ingested, the chunks of its previous version removed
        first: emptying a file, or breaking it, must withdraw what it used to say."""
        return PoisonDocument(document_id, reason, await self.index.delete_document(document_id))

    async def _embeddings(self, texts: list[str]) -> AsyncIterator[list[float]]:
        size = self.options.batch_size
        for start in range(0, len(texts), size):
            for vector in await self._embed(texts[start : start + size]):
                yield vector

    def _fingerprint(self, document: SourceDocument, readers: frozenset[str]) -> str:
        """What the chunks depend on: the bytes, who may read them, how they are extracted, chunked and
        embedded."""
        options = self.options
        parts = (
            document.content_hash,
            "\x1f".join(sorted(readers)),
            f"{PIPELINE_VERSION}/{options.chunk_tokens}/{options.overlap_tokens}",
            f"{options.embedding_model}/{options.dimensions}",
        )
        return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()


def _fails_alone(error: Exception) -> bool:
    """Whether ``error`` is about one document only: a file that cannot be read (``OSError``) or content
    that cannot be processed or stored (``ValueError``). A sync reports such a document and goes on. Not
    a connection failure or a timeout (an endpoint or the index is down: every document would fail) nor
    a dimension mismatch (a configuration error), which fail the sync as a retry later is what fixes them.
    """
    transient_or_global = (ConnectionError, TimeoutError, DimensionMismatchError)
    return isinstance(error, (OSError, ValueError)) and not isinstance(error, transient_or_global)


def embedded_text(title: str, piece: TextChunk) -> str:
    """The chunk as it is embedded: under its title and headings, which often carry the topic a passage
    leaves implicit ("Refunds" above "within 30 days of purchase"). ``chunk_tokens`` bounds the chunk's
    text; the heading path comes on top, cut short (with an ellipsis) so that it and the blank line after
    it cost at most :data:`HEADING_PATH_TOKENS`. An embedded text therefore costs at most ``chunk_tokens +
    HEADING_PATH_TOKENS`` whatever the headings (a 44 KB heading made every chunk ~40,000 tokens), and the
    default (400) sits far below embedding models' input limits (8,191 tokens for text-embedding-3, 8,192
    for Titan v2)."""
    path = " > ".join(part for part in (title, *piece.headings) if part)
    if not path:
        return piece.text
    if count_tokens(f"{path}\n\n") > HEADING_PATH_TOKENS:
        path = _shortened(path, HEADING_PATH_TOKENS - count_tokens("…\n\n")) + "…"
    return f"{path}\n\n{piece.text}"


def _shortened(text: str, max_tokens: int) -> str:
    """The longest start of ``text`` that costs at most ``max_tokens`` (the cost only grows with length)."""
    low, high = 0, len(text)  # the answer's length lies between low and high
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]
