"""Reciprocal rank fusion: how the SQLite and PostgreSQL indexes (and the local AI Search server) rank hybrid
queries.

Hybrid search fuses a keyword ranking (bm25 / ``ts_rank``) and a vector ranking (cosine similarity) whose
scores live on unrelated scales, so it fuses ranks, not scores: reciprocal rank fusion (Cormack, Clarke and
Büttcher, 2009) gives each item the sum of ``1 / (k + rank)`` over the rankings that hold it. Azure AI
Search ranks its hybrid queries the same way with the same ``k = 60``, so a hybrid query orders alike
whichever backend answers it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60
"""The constant of reciprocal rank fusion: large enough that rank 1 does not drown ranks 2 to 10."""

HYBRID_CANDIDATES = 50
"""How deep each ranking goes before fusion: deep enough that a passage one side ranks modestly still wins
when the other ranks it well; deeper lists cost more and barely change the fused top results."""


def reciprocal_rank_fusion(rankings: Iterable[Sequence[K]], k: int = RRF_K) -> list[tuple[K, float]]:
    """Items of all ``rankings`` (each best first) with their fused scores, best first.

    Equal scores keep the order in which the items were first seen, so the result is deterministic.
    """
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda entry: -entry[1])
