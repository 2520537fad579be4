"""Interfaces of the externalized state and memory stores.

The runtime is stateless: conversation history and long-term vector memory live behind these two small
interfaces, so the same agent code runs on SQLite locally and on Redis, PostgreSQL + pgvector or Cosmos DB
in the cloud. Every backend passes the same contract tests (tests/runtime/memory/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, Any]
"""One chat message as the OpenAI API shapes it: ``{"role": ..., "content": ..., ...}``."""


@dataclass(frozen=True)
class VectorItem:
    """A document chunk with its embedding, stored under a namespace (one per agent or tenant)."""

    id: str
    embedding: Sequence[float]
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VectorHit:
    """A search result: the stored item and its cosine similarity to the query (1.0 = identical)."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ConversationStore(Protocol):
    """Ordered message history per conversation id."""

    async def append(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Append messages, in order, to the end of the conversation."""

    async def history(self, conversation_id: str, limit: int | None = None) -> list[Message]:
        """The conversation's messages, oldest first; with ``limit``, only the newest ``limit``."""

    async def delete(self, conversation_id: str) -> None:
        """Forget the conversation (no error if it does not exist)."""

    async def close(self) -> None:
        """Release connections; calling it again does nothing."""


@runtime_checkable
class VectorStore(Protocol):
    """Similarity search over embedded text, partitioned by namespace."""

    async def upsert(self, namespace: str, items: Sequence[VectorItem]) -> None:
        """Insert or replace items by id (within a batch, the last item with an id wins).

        Every embedding must have the store's dimensions (``DimensionMismatchError`` otherwise) and be
        finite and non-zero; the batch is checked before anything is written.
        """

    async def query(
        self,
        namespace: str,
        embedding: Sequence[float],
        top_k: int = 5,
        where: dict[str, Any] | None = None,
    ) -> list[VectorHit]:
        """The ``top_k`` most similar items, best first; ``where`` filters on exact metadata values.

        ``where`` maps top-level metadata keys (identifiers) to a string, number, boolean or None, all of
        which must match, with JSON equality (``True`` does not match ``1``). An unknown namespace gives ``[]``.
        """

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        """Remove items by id (unknown ids are ignored)."""

    async def close(self) -> None:
        """Release connections; calling it again does nothing."""
