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
ingested (unsupported type, corrupt, too large) raises :class:`PoisonDocument` with the reason, which the
worker sends to the dead-letter queue instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from agent_runtime.knowledge.base import Chunk, KnowledgeIndex
from agent_runtime.knowledge.chunking import PIPELINE_VERSION, TextChunk, split
from agent_runtime.knowledge.documents import DocumentSource, DocumentTooLarge, SourceDocument
from agent_runtime.knowledge.extract import ExtractionError, extract

Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
"""Embeddings of a batch of texts, in order (the governed gateway path in the runtime)."""

MAX_ATTEMPTS = 3
"""Re-reads of a document that keeps changing under the worker before it settles for the last version."""


class PoisonDocument(Exception):
    """A document that can never be ingested; ``reason`` says why and what to do."""

    def __init__(self, document_id: str, reason: str) -> None:
        super().__init__(f"{document_id}: {reason}")
        self.document_id = document_id
        self.reason = reason


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
                raise PoisonDocument(document_id, str(error)) from error
            if document is None:
                return Outcome(document_id, "removed", await self.index.delete_document(document_id))
            outcome = await self._ingest(document)
            if outcome.action != "indexed" or await self.source.version(document_id) == document.version:
                return outcome
        return outcome

    async def sync(self, progress: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
        """Every document of the source refreshed, and every indexed document the source no longer has
        removed; ``progress`` is called once per document. Poison documents are reported as skipped."""
        indexed = set(await self.index.document_hashes())
        present: list[str] = [document_id async for document_id in self.source.document_ids()]
        limit = asyncio.Semaphore(self.options.concurrency)

        async def one(document_id: str) -> Outcome:
            async with limit:
                try:
                    outcome = await self.refresh(document_id)
                except PoisonDocument as poison:
                    outcome = Outcome(document_id, "skipped", reason=poison.reason)
            progress(outcome)
            return outcome

        async def gone(document_id: str) -> Outcome:
            outcome = Outcome(document_id, "removed", await self.index.delete_document(document_id))
            progress(outcome)
            return outcome

        return list(
            await asyncio.gather(
                *(one(document_id) for document_id in present),
                *(gone(document_id) for document_id in sorted(indexed - set(present))),
            )
        )

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
            raise PoisonDocument(document.id, str(error)) from error
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


def embedded_text(title: str, piece: TextChunk) -> str:
    """The chunk as it is embedded: under its title and headings, which often carry the topic a passage
    leaves implicit ("Refunds" above "within 30 days of purchase"). ``chunk_tokens`` bounds the chunk's
    text only; the heading path comes on top, which is why the default (400) sits far below embedding
    models' input limits (8,191 tokens for text-embedding-3, 8,192 for Titan v2)."""
    path = " > ".join(part for part in (title, *piece.headings) if part)
    return f"{path}\n\n{piece.text}" if path else piece.text
