"""Query latency at scale: an index filled with tens of thousands of chunks made from the corpus's own.

A real deployment's index holds far more than the few hundred chunks of the Northwind corpus, so latency
is measured on synthetic chunks: each is a corpus chunk's text with words of another appended (so that
no two embeddings are equal, which would flatter an HNSW graph), under the first chunk's headings, in
documents of :data:`CHUNKS_PER_DOCUMENT` chunks whose readers rotate over the corpus's reader sets and a
set of team groups. Searches rotate over callers of different groups, so trimming by readers is part of
every measured query.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import cycle

from northwind import OUTSIDER, document_paths, embed_query, embed_texts, load_readers
from northwind import chunks as corpus_chunks

from agent_runtime.knowledge.base import Chunk, KnowledgeIndex, KnowledgeQuery, SearchMode
from agent_runtime.knowledge.chunking import TextChunk

CHUNKS_PER_DOCUMENT = 25
TEAMS = [f"team-{number:02d}" for number in range(20)]
CALLERS = [
    frozenset({"engineering"}),
    frozenset({"operations", "team-03"}),
    frozenset({"finance", "managers"}),
    frozenset({OUTSIDER}),
]
APPENDED_WORDS = 16


@dataclass(frozen=True)
class Loaded:
    """How long embedding and writing the synthetic chunks took (not extraction: they have no source)."""

    chunks: int
    seconds: float

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds


async def fill(index: KnowledgeIndex, count: int) -> Loaded:
    """``count`` synthetic chunks into ``index``, embedded and written a document at a time."""
    base = [piece for document in document_paths() for piece in corpus_chunks(document)]
    reader_sets = sorted({*load_readers().values(), *(frozenset({team}) for team in TEAMS)}, key=sorted)
    started = time.perf_counter()
    for first in range(0, count, CHUNKS_PER_DOCUMENT):
        number = first // CHUNKS_PER_DOCUMENT
        document_id = f"synthetic/{number:05d}.md"
        positions = range(first, min(first + CHUNKS_PER_DOCUMENT, count))
        texts = [_text(base, position) for position in positions]
        embeddings = await embed_texts(texts)
        content_hash = hashlib.sha256(document_id.encode()).hexdigest()
        readers = reader_sets[number % len(reader_sets)]
        await index.replace_document(
            document_id,
            [
                Chunk(
                    document_id=document_id,
                    index=index_in_document,
                    text=text,
                    embedding=embedding,
                    content_hash=content_hash,
                    readers=readers,
                    uri=f"file:///{document_id}",
                    title=f"Synthetic document {number}",
                    headings=base[position % len(base)].headings,
                )
                for index_in_document, (position, text, embedding) in enumerate(
                    zip(positions, texts, embeddings, strict=True)
                )
            ],
        )
    return Loaded(count, time.perf_counter() - started)


def _text(base: Sequence[TextChunk], position: int) -> str:
    """A corpus chunk's text with words of another: chunk texts repeat, their combinations do not."""
    other = base[(position * 31 + position // len(base)) % len(base)].text.split()
    return f"{base[position % len(base)].text} {' '.join(other[:APPENDED_WORDS])}"


async def latencies(
    index: KnowledgeIndex, questions: Sequence[str], mode: SearchMode, rounds: int
) -> dict[str, float]:
    """p50 and p95 milliseconds of ``index.search`` (the query embedded beforehand, as by the caller)."""
    embeddings = [embed_query(text) for text in questions]
    callers = cycle(CALLERS)
    await index.search(KnowledgeQuery(questions[0], embeddings[0], CALLERS[0], mode=mode))  # warm caches
    samples: list[float] = []
    for _ in range(rounds):
        for text, embedding in zip(questions, embeddings, strict=True):
            query = KnowledgeQuery(text, embedding, next(callers), top_k=5, mode=mode)
            started = time.perf_counter()
            await index.search(query)
            samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(samples, 50), "p95_ms": percentile(samples, 95), "queries": len(samples)}


def percentile(values: Sequence[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]
