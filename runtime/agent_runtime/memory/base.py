"""Interfaces of the externalized state and memory stores.

The runtime is stateless: conversation history and long-term vector memory live behind these two small
interfaces, so the same agent code runs on SQLite locally and on Redis, PostgreSQL + pgvector or Cosmos DB
in the cloud. Every backend passes the same contract tests (tests/runtime/memory/).
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class Owner:
    """Whose a conversation is: the authenticated caller and its tenant, as the identity says.

    A conversation id names a conversation *of its owner*: two owners using the same id have two separate
    conversations, and no operation of one can reach the other's. Ids travel in responses, logs, traces
    and support tickets; they are names, never capabilities.
    """

    tenant: str
    caller: str

    def __post_init__(self) -> None:
        for part in ("tenant", "caller"):
            problem = identity_problem(getattr(self, part))
            if problem:
                raise ValueError(f"an owner's {part} {problem}")


MAX_IDENTITY_CHARS = 256
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0 controls, DEL and C1 controls: what an identity must not hold."""


def identity_problem(value: object) -> str | None:
    """Why ``value`` cannot be a caller or tenant id (what every store can key on), or ``None``.

    Ids must be non-empty strings of at most 256 characters without control characters: PostgreSQL text
    cannot hold NUL, and a control character in an id is a forged or broken identity, not a name.
    """
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, got {value!r}"
    if len(value) > MAX_IDENTITY_CHARS:
        return f"must be at most {MAX_IDENTITY_CHARS} characters, got {len(value)}"
    if _CONTROL_CHARACTER.search(value):
        return "must not contain control characters"
    return None


@dataclass(frozen=True)
class Conversation:
    """One of an owner's conversations, as listed: its id, when it began and last changed, its length, and
    ``cursor``: where a listing resumes after it (the store's own position, opaque to everyone else)."""

    id: str
    created_at: float
    updated_at: float
    messages: int
    cursor: str


@dataclass(frozen=True)
class HistoryPage:
    """A run of one conversation's messages, oldest first: ``messages`` are those at positions ``first`` to
    ``first + len(messages) - 1`` (0 is the conversation's first message) of the ``length`` it had when read
    (0: the owner has no conversation of that id).

    Positions are for good: a conversation only grows at its end (or is deleted whole), so a page read
    later by the same positions holds the same messages, however many were appended meanwhile."""

    first: int
    messages: list[Message]
    length: int


@runtime_checkable
class ConversationStore(Protocol):
    """Ordered message history per (owner, conversation id).

    Every operation takes the owner and reaches only that owner's conversations: the owner is part of the
    key each backend stores under, so the check happens in the same operation as the read or write.
    """

    async def append(self, owner: Owner, conversation_id: str, messages: Sequence[Message]) -> None:
        """Append messages, in order, to the end of the owner's conversation (begun by its first append)."""

    async def history(self, owner: Owner, conversation_id: str, limit: int | None = None) -> list[Message]:
        """The owner's conversation, oldest first; with ``limit``, only the newest ``limit``. ``[]`` when the
        owner has no conversation of that id, whoever else does."""

    async def page(
        self, owner: Owner, conversation_id: str, limit: int, before: int | None = None
    ) -> HistoryPage:
        """At most ``limit`` of the owner's messages, the newest of those before position ``before`` (``None``:
        the conversation's end; past it, the same)."""

    async def conversations(
        self, owner: Owner, limit: int = 100, after: str | None = None
    ) -> list[Conversation]:
        """The owner's conversations, most recently changed first (ties in an order of the store's), at most
        ``limit`` of them; with ``after`` (the ``cursor`` of a conversation listed before), only those after
        it: a walk page by page lists each conversation once, save one changed meanwhile, which moves to the
        front. An ``after`` this store did not make raises :class:`~agent_runtime.memory.common.InvalidCursor`."""

    async def delete(self, owner: Owner, conversation_id: str) -> bool:
        """Forget the owner's conversation; ``False`` when the owner had none of that id."""

    async def delete_tenant(self, tenant: str) -> int:
        """Forget every conversation of every caller of ``tenant``; returns how many there were."""

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
