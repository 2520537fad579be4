"""What every knowledge index backend shares: the words of a query and the checks of its input.

The checks live here, not in each backend, so that every backend refuses the same input with the same
message before it writes anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import get_args

from agent_runtime.memory.common import check_count, check_embedding, check_id

from .base import EVERYONE, Chunk, KnowledgeQuery, SearchMode

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
    ]
)
"""English function words. A keyword query leaves them out ("how do I get a refund" searches for "get" and
"refund"): in an OR query they match nearly every passage, which costs a posting-list scan each and lets
a passage full of "the" outrank one with the topic. The local embedder leaves them out for the same
reason trained embedding models effectively do."""

MAX_QUERY_TERMS = 32
"""Query words beyond this are dropped: each costs a posting-list scan, and a pasted page must not stall."""

_TERM = re.compile(r"[^\W_]+")  # letters and digits: what both full-text tokenizers keep as a word

# NUL, which PostgreSQL text cannot hold, and lone surrogates, which UTF-8 (every store's encoding) cannot.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def query_terms(text: str) -> list[str]:
    """The query's distinct words (letters and digits only) but :data:`STOP_WORDS`, in order, at most
    :data:`MAX_QUERY_TERMS`; a query of function words only ("to be or not to be") keeps them.

    Only these ever reach a full-text engine, each as a literal term: quotes, ``*``, ``-``, ``:``,
    parentheses and the like are dropped here, and operator words (``AND``, ``NEAR``) are quoted by the
    backend, so no user text is parsed as query syntax.
    """
    seen: dict[str, str] = {}
    for term in _TERM.findall(text):
        seen.setdefault(term.casefold(), term)
    content = [term for folded, term in seen.items() if folded not in STOP_WORDS]
    return (content or list(seen.values()))[:MAX_QUERY_TERMS]


def readable_by(principals: Iterable[str]) -> list[str]:
    """The readers whose chunks the principals may read: their own, plus :data:`EVERYONE`'s."""
    return sorted({*principals, EVERYONE})


def check_chunks(document_id: str, chunks: Sequence[Chunk], dimensions: int) -> list[list[float]]:
    """The chunks' checked embeddings; raises ``ValueError`` (before any write) when the batch is not one
    whole, well-formed version of ``document_id``."""
    check_id(document_id, "document id")
    if not chunks:
        raise ValueError(f"no chunks for document {document_id!r}: use delete_document to remove it")
    content_hash = chunks[0].content_hash
    check_id(content_hash, "content hash")
    positions: set[int] = set()
    for chunk in chunks:
        if chunk.document_id != document_id:
            raise ValueError(f"chunk of document {chunk.document_id!r} given for document {document_id!r}")
        if chunk.content_hash != content_hash:
            raise ValueError(f"the chunks of document {document_id!r} have different content hashes")
        if not isinstance(chunk.index, int) or chunk.index < 0 or chunk.index in positions:
            raise ValueError(
                f"chunk index {chunk.index!r} of document {document_id!r} is negative or repeated"
            )
        positions.add(chunk.index)
        if not chunk.readers or not all(isinstance(r, str) and r for r in chunk.readers):
            raise ValueError(f"chunk {chunk.index} of document {document_id!r} must name its readers")
        texts = (document_id, chunk.text, chunk.title, chunk.uri, *chunk.headings, *chunk.readers)
        if any(_UNSTORABLE.search(text) for text in texts):
            raise ValueError(
                f"chunk {chunk.index} of document {document_id!r} contains a NUL character or a lone "
                "surrogate, which no backend can store"
            )
    return [check_embedding(chunk.embedding, dimensions) for chunk in chunks]


def check_query(query: KnowledgeQuery, dimensions: int) -> list[float] | None:
    """The query's checked embedding (``None`` in keyword mode, which does not use it)."""
    if query.mode not in get_args(SearchMode):
        raise ValueError(f"search mode must be one of {get_args(SearchMode)}, got {query.mode!r}")
    check_count(query.top_k, "top_k")
    if not isinstance(query.text, str) or not all(isinstance(p, str) for p in query.principals):
        raise TypeError("query text and principals must be strings")
    return None if query.mode == "keyword" else check_embedding(query.embedding, dimensions)
