"""Exact cosine search in numpy, for the backends that have no vector index (SQLite, Redis without RediSearch).

A namespace is loaded once into a :class:`Snapshot` (unit-normalised float32 matrix plus the documents) and
kept in a :class:`SnapshotCache` keyed by the namespace's *revision*: a random token the store rewrites on
every change of that namespace, in the same transaction as the change. A query then costs one small read to
compare revisions and one matrix-vector product (about 2 ms for 10k x 384), and other processes' writes are
still seen at once. Brute force is exact, so these backends never miss a filtered hit the way an approximate
index can.

numpy is imported on first use, not with this module: a runtime whose agents never touch vector memory
(no recall, no memory tools) does not pay its ~150 ms import at cold start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import VectorHit
from .common import DimensionMismatchError, metadata_matches


def pack_embedding(values: Sequence[float]) -> bytes:
    """The embedding as little-endian float32 bytes, a quarter of the size of its JSON text."""
    import numpy as np

    return np.asarray(values, dtype="<f4").tobytes()


@dataclass(frozen=True)
class Document:
    """What a query returns besides the score."""

    id: str
    text: str
    metadata: dict[str, Any]


class Snapshot:
    """All vectors of one namespace at one revision, ready to score."""

    def __init__(self, revision: str, documents: list[Document], embeddings: list[bytes], dimensions: int):
        import numpy as np

        self.revision = revision
        self.documents = documents
        matrix = np.frombuffer(b"".join(embeddings), dtype="<f4") if embeddings else np.empty(0, "<f4")
        if matrix.size != len(documents) * dimensions:
            stored = len(embeddings[0]) // 4
            raise DimensionMismatchError(
                f"the store holds {stored}-dimensional vectors but AGENTSTAGE_EMBEDDING_DIMENSIONS is {dimensions}"
            )
        matrix = matrix.reshape(len(documents), dimensions)
        self.unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def search(self, query: Sequence[float], top_k: int, where: dict[str, Any]) -> list[VectorHit]:
        """The ``top_k`` best matches among the documents whose metadata matches ``where``."""
        if top_k == 0 or not self.documents:
            return []
        import numpy as np

        q = np.asarray(query, dtype=np.float32)
        q /= np.linalg.norm(q)
        if where:
            rows = np.flatnonzero([metadata_matches(doc.metadata, where) for doc in self.documents])
            scores = self.unit[rows] @ q
        else:  # no fancy indexing: it would copy the whole matrix on every query
            rows = np.arange(len(self.documents))
            scores = self.unit @ q
        if top_k < len(rows):
            best = np.argpartition(-scores, top_k - 1)[:top_k]
        else:
            best = np.arange(len(rows))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [self._hit(int(rows[i]), float(scores[i])) for i in best]

    def _hit(self, row: int, score: float) -> VectorHit:
        doc = self.documents[row]
        return VectorHit(id=doc.id, text=doc.text, score=score, metadata=doc.metadata)


class SnapshotCache:
    """The latest snapshot per namespace, reused while the namespace's revision is unchanged."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}

    def get(self, namespace: str, revision: str) -> Snapshot | None:
        snapshot = self._snapshots.get(namespace)
        return snapshot if snapshot is not None and snapshot.revision == revision else None

    def put(self, namespace: str, snapshot: Snapshot) -> Snapshot:
        self._snapshots[namespace] = snapshot
        return snapshot

    def clear(self) -> None:
        self._snapshots.clear()
