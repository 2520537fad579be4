"""The benchmark's embedder: latent semantic analysis fitted on the corpus, beside subword feature hashing.

A trained embedding model places "a new dad" near "paternity leave" because it learned from text where
they occur together. No model weights can be downloaded here, so this embedder learns the same kind of
signal from the corpus itself: a TF-IDF matrix of the corpus's chunks (content words and their character
4-grams) reduced by a truncated SVD to :data:`CONCEPTS` dimensions, in which terms that share contexts
share directions (Deerwester et al., 1990). The other :data:`HASHED` dimensions are the runtime's local
subword-hashing embedder (:func:`agent_runtime.testing.server.embed`), which keeps exact word identity that
the SVD blurs. Both halves are unit vectors given equal weight; the settings are round defaults, not tuned
on the questions (the README reports how results move across other settings).

It is deterministic (the SVD of a fixed matrix), fitted once per process, and used only by the retrieval
benchmark and its test; ``agentstage dev`` and the runtime's tests keep the hashing embedder, which needs
no corpus.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from agent_runtime.knowledge.common import STOP_WORDS
from agent_runtime.testing.server import embed

DIMENSIONS = 384
CONCEPTS = 128
"""Dimensions of the latent space (LSA's usual range is 100-300; fewer than the corpus's chunks)."""
HASHED = DIMENSIONS - CONCEPTS
MIN_DOCUMENT_FREQUENCY = 2
"""Terms seen in one chunk only carry no co-occurrence: left out of the latent space."""

_WORD = re.compile(r"[^\W_]+")


def features(text: str) -> list[str]:
    """Content words and their character 4-grams (``<refund>`` -> ``<ref``, ``refu``, ... ``und>``)."""
    words = [word for word in _WORD.findall(text.lower()) if word not in STOP_WORDS]
    grams = [f"<{word}>"[start : start + 4] for word in words for start in range(len(word) - 1)]
    return words + grams


class LatentSemantics:
    """TF-IDF (sublinear term frequency) projected on the top singular vectors of the corpus matrix."""

    def __init__(self, texts: Sequence[str], concepts: int = CONCEPTS) -> None:
        counts = [Counter(features(text)) for text in texts]
        frequency = Counter(term for count in counts for term in count)
        terms = sorted(term for term, seen in frequency.items() if seen >= MIN_DOCUMENT_FREQUENCY)
        self._column = {term: position for position, term in enumerate(terms)}
        self._idf = np.log((len(texts) + 1) / (np.array([frequency[t] for t in terms]) + 1)) + 1
        matrix = np.stack([self._weights(count) for count in counts])
        _, singular, rows = np.linalg.svd(matrix, full_matrices=False)
        self._projection = rows[:concepts].T / singular[:concepts]

    def vector(self, text: str) -> np.ndarray:
        """The text in the latent space, as a unit vector (zero when it shares no term with the corpus)."""
        columns, weights = self._sparse(Counter(features(text)))
        latent = weights @ self._projection[columns]
        norm = float(np.linalg.norm(latent))
        return latent / norm if norm else latent

    def _weights(self, count: Counter[str]) -> np.ndarray:
        """The dense TF-IDF row of a text (what the corpus matrix is made of)."""
        dense = np.zeros(len(self._column))
        columns, weights = self._sparse(count)
        dense[columns] = weights
        return dense

    def _sparse(self, count: Counter[str]) -> tuple[np.ndarray, np.ndarray]:
        """The columns of the text's known terms and their unit-normalised TF-IDF weights."""
        known = [(self._column[term], seen) for term, seen in count.items() if term in self._column]
        columns = np.array([column for column, _ in known], dtype=np.int64)
        weights = (1.0 + np.log([seen for _, seen in known])) * self._idf[columns] if known else np.zeros(0)
        norm = float(np.linalg.norm(weights))
        return columns, weights / norm if norm else weights


class CorpusEmbedder:
    """``embed(text)``: the latent half and the hashed half, each a unit vector, as one unit vector."""

    def __init__(self, corpus: Iterable[str]) -> None:
        self._latent = LatentSemantics(list(corpus))

    def __call__(self, text: str) -> list[float]:
        joined = np.concatenate([self._latent.vector(text), np.asarray(embed(text, HASHED))])
        return (joined / float(np.linalg.norm(joined))).tolist()
