"""Where documents come from: a source names, fetches and versions them, and says who may read each.

A source is read, never trusted for ordering: the ingestion worker treats every event as "this document
may have changed" and asks the source for its current state (:meth:`DocumentSource.fetch`). Out-of-order
or redelivered events therefore converge on the source's truth, and a deleted document is recognised by
its absence rather than by the event's type alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

_READER_SEPARATORS = re.compile(r"[\s,]+")

READERS_KEY = "readers"
"""The blob metadata key / S3 object tag that lists a document's readers (comma- or space-separated)."""


class DocumentTooLarge(ValueError):
    """A document over the configured size: refused before it is read into memory."""


@dataclass(frozen=True)
class SourceDocument:
    """A document's bytes as the source holds them now.

    ``version`` is the source's own change marker (an ETag, a file's size and modification time): the
    worker compares it after writing, to catch a change that raced the ingestion. ``readers`` is ``None``
    when the document declares none (the worker then applies the configured default, or skips it).
    """

    id: str
    uri: str
    content: bytes
    media_type: str | None
    version: str
    readers: frozenset[str] | None

    @cached_property
    def content_hash(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@runtime_checkable
class DocumentSource(Protocol):
    """A container of documents named by ids (blob names, S3 keys, relative paths)."""

    async def fetch(self, document_id: str, *, max_bytes: int) -> SourceDocument | None:
        """The document now, or ``None`` when it no longer exists; :class:`DocumentTooLarge` over
        ``max_bytes`` (checked from the source's metadata before the content is downloaded)."""

    async def version(self, document_id: str) -> str | None:
        """The document's current change marker without its content, or ``None`` when it is gone."""

    def document_ids(self) -> AsyncIterator[str]:
        """Every document the source holds now (what a full sync compares the index with)."""

    async def close(self) -> None:
        """Release clients; calling it again does nothing."""


def parse_readers(value: str | Iterable[str] | None) -> frozenset[str] | None:
    """Readers from metadata (``"hr, finance"`` or ``"hr finance"``) or a list; ``None`` when undeclared.

    A declared but empty value (``readers=""``) is an empty set: nobody may read the document, which the
    worker reports rather than guessing.
    """
    if value is None:
        return None
    names = _READER_SEPARATORS.split(value) if isinstance(value, str) else list(value)
    return frozenset(name.strip() for name in names if name and name.strip())
