"""Validation, encoding and closing helpers shared by every backend.

Every backend checks its input here, before touching its service, so that a bad request fails the same way
(and with the same message) whichever backend is configured, and never half-way through a write.
This module is pure Python on purpose: the PostgreSQL and Cosmos DB backends score on the server and must
not pay numpy's import time at cold start.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .base import Message, Owner, VectorItem

_SCALAR_TYPES = (str, int, float, bool, type(None))
_FILTER_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_TINY = 2.0**-126  # the smallest normal float32


class DimensionMismatchError(ValueError):
    """An embedding's length differs from the store's configured dimensions."""


class InvalidCursor(ValueError):
    """A listing's ``after`` that no listing of this store returned (altered, truncated or another store's)."""

    def __init__(self, cursor: str) -> None:
        super().__init__(f"not a cursor of this listing: {cursor[:80]!r}")


class CloseOnce:
    """Wraps a store's release function so that ``close()`` may be called any number of times."""

    def __init__(self, release: Callable[[], Awaitable[object]]):
        self._release: Callable[[], Awaitable[object]] | None = release

    async def __call__(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            await release()


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Built once: ``json.dumps`` with options builds an encoder per call."""


def dump_json(value: Any) -> str:
    """Compact JSON that keeps non-ASCII text readable; control characters are still escaped."""
    return _COMPACT.encode(value)


def check_id(value: str, what: str) -> str:
    """Refuse empty or non-string identifiers (conversation ids, namespaces, item ids)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_owner(owner: Owner) -> Owner:
    """Refuse anything but an :class:`Owner` (a bare id would silently name a conversation of nobody)."""
    if not isinstance(owner, Owner):
        raise TypeError(f"a conversation's owner must be an Owner, got {type(owner).__name__}")
    return owner


def conversation_key(owner: Owner, conversation_id: str) -> tuple[str, str, str]:
    """(tenant, caller, conversation id), checked: what every backend stores a conversation under."""
    check_owner(owner)
    return owner.tenant, owner.caller, check_id(conversation_id, "conversation id")


def position_cursor(changed: float, conversation_id: str) -> str:
    """The cursor of a listed conversation in a store that orders by (when it changed, its id): both, as
    JSON (a float's repr reads back to the same float, so a position compares exactly)."""
    return dump_json([changed, conversation_id])


def read_position(cursor: str) -> tuple[float | int, str]:
    """(when it changed, its id) from a :func:`position_cursor`; :class:`InvalidCursor` for anything else."""
    try:
        changed, conversation_id = json.loads(cursor)
    except (TypeError, ValueError) as error:
        raise InvalidCursor(cursor) from error
    if not (
        isinstance(changed, (int, float))
        and not isinstance(changed, bool)
        and math.isfinite(changed)
        and isinstance(conversation_id, str)
        and conversation_id
    ):
        raise InvalidCursor(cursor)
    return changed, conversation_id


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """Messages must be JSON objects; checked up front so an append is all-or-nothing."""
    checked = list(messages)
    for index, message in enumerate(checked):
        if not isinstance(message, dict):
            raise TypeError(f"message {index} must be a dict, got {type(message).__name__}")
    return checked


def check_count(value: int | None, what: str, *, optional: bool = False) -> int | None:
    """``limit`` / ``top_k``: zero means none, negative is an error; ``None`` (all) only where ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def page_span(length: int, limit: int, before: int | None) -> range:
    """The positions a :class:`~agent_runtime.memory.base.HistoryPage` holds, in a conversation of
    ``length`` messages: the newest ``limit`` of those before ``before`` (``None``, or past the end: the end)."""
    check_count(limit, "limit")
    end = length
    if before is not None:
        check_count(before, "before")
        end = min(before, length)
    return range(max(0, end - limit), end)


def check_embedding(embedding: Sequence[float], dimensions: int) -> list[float]:
    """The embedding as floats, refusing a wrong length, non-finite values and the zero vector.

    Cosine similarity is undefined for the zero vector, and each backend would otherwise answer differently
    (NaN, an error, or silently last), so it is refused everywhere. Stores keep float32 and the SQLite
    backends score in it, so the checks apply to the vector as float32 holds it: a component of 1e39 is
    infinite there (pgvector refuses it; SQLite scored NaN), one of 1e-46 is 0, and a squared length
    beyond float32's range makes the normalised vector NaN.
    """
    values = [float(x) for x in embedding]
    if len(values) != dimensions:
        raise DimensionMismatchError(
            f"embedding has {len(values)} dimensions but this store holds {dimensions}-dimensional vectors "
            "(AGENTSTAGE_EMBEDDING_DIMENSIONS must match the embedding model)"
        )
    stored = array("f", values)  # float32, rounded as every store rounds it (out of range: inf or 0)
    if not all(math.isfinite(x) for x in stored):
        raise ValueError("embedding contains NaN or infinite values (or values beyond float32's ±3.4e38)")
    # Scoring sums the squares in float32: half its maximum leaves room for the sum's rounding.
    if not _FLOAT32_TINY <= math.fsum(x * x for x in stored) <= _FLOAT32_MAX / 2:
        raise ValueError(
            "embedding is the zero vector (cosine similarity is undefined for it), or its length under- or "
            "overflows float32, in which stores keep and score it"
        )
    return values


def check_items(items: Sequence[VectorItem], dimensions: int) -> list[tuple[VectorItem, list[float]]]:
    """Each item with its checked embedding; the whole batch is checked before anything is written."""
    checked = []
    for item in items:
        check_id(item.id, "item id")
        if not isinstance(item.metadata, dict):
            raise TypeError(f"metadata of item {item.id!r} must be a dict")
        checked.append((item, check_embedding(item.embedding, dimensions)))
    return checked


def check_where(where: dict[str, Any] | None) -> dict[str, Any]:
    """A metadata filter: top-level keys that are identifiers, compared with scalar JSON values.

    Keys are restricted to identifiers because Cosmos DB cannot take a property name as a query parameter;
    the same rule everywhere keeps a filter portable between backends.
    """
    if not where:
        return {}
    for key, value in where.items():
        if not isinstance(key, str) or not _FILTER_KEY.match(key):
            raise ValueError(f"filter key {key!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(value, _SCALAR_TYPES):
            raise TypeError(f"filter value for {key!r} must be a string, number, boolean or None")
    return dict(where)


def metadata_matches(metadata: dict[str, Any], where: dict[str, Any]) -> bool:
    """JSON equality as the database backends apply it: ``True`` does not equal ``1``, ``1`` equals ``1.0``."""
    return all(key in metadata and _json_equal(metadata[key], expected) for key, expected in where.items())


def _json_equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    both_numbers = isinstance(actual, (int, float)) and isinstance(expected, (int, float))
    return (both_numbers or type(actual) is type(expected)) and actual == expected
