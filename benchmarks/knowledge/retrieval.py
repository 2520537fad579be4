"""Benchmark: keyword, vector and hybrid knowledge search on the Northwind corpus, side by side in one run.

Three measurements, printed as one table:

* retrieval quality: the corpus (``corpus/``) is ingested into a fresh index by the runtime's ingestor
  (extract, split into 400-token chunks, embed, replace each document, readers from ``corpus/readers.yaml``);
  every question of ``questions.yaml`` is searched in each mode, top 5, by a caller who may read the
  expected document; recall@5 and MRR@5 per mode, and recall by question style. The requirement is that
  hybrid beats each mode alone on the embedded backend (SQLite; higher recall@5, or equal recall@5 and
  higher MRR): the script exits 1 when it does not, or when a caller outside a document's readers is shown
  any of its passages on any backend.
* ingestion rate: that ingestion in chunks per second, extraction to upsert, the median of
  ``--ingest-rounds`` ingestions into fresh indexes. Target >= 200 chunks/s.
* query latency at scale: p50/p95 of ``search`` per mode on ``--chunks`` synthetic chunks (see scale.py).
  Target p50 <= 20 ms.

Each runs on SQLite and, with ``--postgres DSN``, on PostgreSQL + pgvector too (in schemas of their own,
dropped afterwards). The embedder is deterministic and local (``lsa.py``): latent semantic analysis fitted
on the corpus beside the runtime's subword-hashing embedder, 384 dimensions - a stand-in for a trained model
that learns co-occurrence from this corpus only, so the figures are a floor for what a real model gives.

Run: ``.venv/bin/python benchmarks/knowledge/retrieval.py [--chunks 50000] [--rounds 3] [--ingest-rounds 3]
[--skip-scale] [--postgres DSN] [--json] [--misses]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from northwind import (
    OPTIONS,
    OUTSIDER,
    Question,
    document_paths,
    embed_query,
    extracted,
    ingest,
    load_questions,
    load_readers,
    principals_for,
)
from scale import fill, latencies

from agent_runtime.knowledge.base import EVERYONE, KnowledgeIndex, KnowledgeQuery, SearchMode
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex

MODES: tuple[SearchMode, ...] = ("keyword", "vector", "hybrid")
TOP_K = 5
INGEST_TARGET = 200  # chunks per second
P50_TARGET_MS = 20.0

OpenIndex = Callable[[str], AbstractAsyncContextManager[KnowledgeIndex]]
"""A fresh, empty index for one measurement, named by it (``recall``, ``scale``); closed and removed after."""


async def first_hits(index: KnowledgeIndex, questions: list[Question], mode: SearchMode) -> list[int | None]:
    """For each question, the rank (1-based) of the first returned passage that answers it, if any."""
    readers = load_readers()
    ranks: list[int | None] = []
    for question in questions:
        query = KnowledgeQuery(
            question.text,
            embed_query(question.text),
            principals_for(readers[question.document]),
            top_k=TOP_K,
            mode=mode,
        )
        passages = await index.search(query)
        ranks.append(next((rank for rank, p in enumerate(passages, 1) if question.answered_by(p)), None))
    return ranks


def scores(questions: list[Question], ranks: list[int | None]) -> dict[str, Any]:
    """recall@5, MRR@5 (a miss counts 0), recall per question style, and the questions missed."""
    found = [rank is not None for rank in ranks]
    styles = sorted({question.style for question in questions})
    return {
        "recall_at_5": statistics.mean(found),
        "mrr": statistics.mean(1 / rank if rank else 0.0 for rank in ranks),
        "recall_by_style": {
            style: statistics.mean(hit for question, hit in zip(questions, found) if question.style == style)
            for style in styles
        },
        "misses": [question.text for question, rank in zip(questions, ranks) if rank is None],
    }


async def evaluate(index: KnowledgeIndex, questions: list[Question]) -> dict[str, dict[str, Any]]:
    """Every mode's scores on an index holding the corpus."""
    return {mode: scores(questions, await first_hits(index, questions, mode)) for mode in MODES}


def hybrid_beats_each(results: dict[str, dict[str, Any]]) -> bool:
    """Hybrid finds more answers than each mode alone, or as many and ranks them higher."""
    hybrid = (results["hybrid"]["recall_at_5"], results["hybrid"]["mrr"])
    return all(
        hybrid > (results[mode]["recall_at_5"], results[mode]["mrr"]) for mode in ("keyword", "vector")
    )


async def leaked_passages(index: KnowledgeIndex, questions: list[Question]) -> int:
    """Passages shown to a caller in no group, from documents not everyone may read (must be 0)."""
    readers = load_readers()
    leaked = 0
    for question in questions:
        query = KnowledgeQuery(question.text, embed_query(question.text), frozenset({OUTSIDER}), top_k=TOP_K)
        leaked += sum(EVERYONE not in readers[passage.document_id] for passage in await index.search(query))
    return leaked


def corpus_size() -> dict[str, int]:
    documents = document_paths()
    words = sum(len(section.text.split()) for path in documents for section in extracted(path).sections)
    return {"documents": len(documents), "words": words}


async def measure_backend(open_index: OpenIndex, args: argparse.Namespace) -> dict[str, Any]:
    """Recall, leaks and ingestion on the corpus, then latency at scale, on one backend."""
    questions = load_questions()
    async with open_index("recall") as index:
        ingested = [await ingest(index)]
        result: dict[str, Any] = {
            "recall": await evaluate(index, questions),
            "leaked_passages": await leaked_passages(index, questions),
        }
    for round_ in range(1, args.ingest_rounds):  # more fresh indexes: one ingestion of a second is noisy
        async with open_index(f"ingest{round_}") as index:
            ingested.append(await ingest(index))
    median = sorted(ingested, key=lambda run: run.chunks_per_second)[len(ingested) // 2]
    result["ingest"] = {
        "chunks": median.chunks,
        "seconds": median.seconds,
        "chunks_per_second": median.chunks_per_second,
        "rounds": len(ingested),
    }
    if not args.skip_scale:
        texts = [question.text for question in questions]
        async with open_index("scale") as index:
            loaded = await fill(index, args.chunks)
            result["scale"] = {
                "chunks": loaded.chunks,
                "load_chunks_per_second": loaded.chunks_per_second,
                **{mode: await latencies(index, texts, mode, args.rounds) for mode in MODES},
            }
    return result


def sqlite_indexes(directory: Path) -> OpenIndex:
    @asynccontextmanager
    async def open_index(name: str) -> AsyncIterator[KnowledgeIndex]:
        index = await SqliteKnowledgeIndex.open(str(directory / f"{name}.db"), OPTIONS.dimensions)
        try:
            yield index
        finally:
            await index.close()

    return open_index


def postgres_indexes(dsn: str) -> OpenIndex:
    # Imported here: psycopg and the pgvector backend are needed only when a DSN is given.
    import psycopg
    from psycopg import sql

    from agent_runtime.knowledge.postgres import PostgresKnowledgeIndex

    @asynccontextmanager
    async def open_index(name: str) -> AsyncIterator[KnowledgeIndex]:
        schema = f"knowledge_bench_{name}_{os.getpid()}"
        index = await PostgresKnowledgeIndex.connect(dsn, OPTIONS.dimensions, schema=schema)
        try:
            yield index
        finally:
            await index.close()
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    return open_index


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions = load_questions()
    results: dict[str, Any] = {
        "corpus": corpus_size(),
        "questions": {
            "total": len(questions),
            **{
                style: sum(q.style == style for q in questions)
                for style in sorted({q.style for q in questions})
            },
        },
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as directory:
        backends = {"sqlite": sqlite_indexes(Path(directory))}
        if args.postgres:
            backends["postgres"] = postgres_indexes(args.postgres)
        for name, open_index in backends.items():
            results["backends"][name] = await measure_backend(open_index, args)
    results["corpus"]["chunks"] = results["backends"]["sqlite"]["ingest"]["chunks"]
    # The requirement is on the embedded backend; PostgreSQL's figures are reported beside it.
    results["passed"] = hybrid_beats_each(results["backends"]["sqlite"]["recall"]) and all(
        backend["leaked_passages"] == 0 for backend in results["backends"].values()
    )
    return results


def report(results: dict[str, Any], misses: bool) -> str:
    """The results as the printed table: corpus, recall per backend and mode, ingestion, latency."""
    corpus, questions = results["corpus"], results["questions"]
    styles = [style for style in questions if style != "total"]
    lines = [
        f"Northwind corpus: {corpus['documents']} documents, {corpus['words']:,} words, {corpus['chunks']} "
        f"chunks ({OPTIONS.chunk_tokens} tokens, {OPTIONS.overlap_tokens} overlap); {questions['total']} "
        "questions (" + ", ".join(f"{questions[style]} {style}" for style in styles) + ")",
        "",
        *_recall_lines(results["backends"], styles),
        "",
        *_ingest_lines(results["backends"]),
        *_latency_lines(results["backends"]),
    ]
    if misses:
        for name, backend in results["backends"].items():
            for mode in MODES:
                lines += ["", f"missed by {name} {mode}:"]
                lines += [f"  {question}" for question in backend["recall"][mode]["misses"]]
    return "\n".join(lines)


def _recall_lines(backends: dict[str, Any], styles: list[str]) -> list[str]:
    lines = [
        f"{'retrieval, top 5':<20}{'recall@5':>10}{'MRR@5':>8}" + "".join(f"{'r@5 ' + s:>16}" for s in styles)
    ]
    for name, backend in backends.items():
        for mode in MODES:
            score = backend["recall"][mode]
            lines.append(
                f"{name + ' ' + mode:<20}{score['recall_at_5']:>10.2f}{score['mrr']:>8.2f}"
                + "".join(f"{score['recall_by_style'][style]:>16.2f}" for style in styles)
            )
        verdict = "yes" if hybrid_beats_each(backend["recall"]) else "NO"
        lines.append(
            f"{name}: hybrid beats each alone: {verdict}; passages leaked past reader trimming: "
            f"{backend['leaked_passages']}"
        )
    return lines


def _ingest_lines(backends: dict[str, Any]) -> list[str]:
    return [
        f"ingestion (extract+split+embed+upsert), {name}, median of {ingest['rounds']}: "
        f"{ingest['chunks']} chunks in {ingest['seconds']:.2f} s = "
        f"{ingest['chunks_per_second']:.0f} chunks/s (target >= {INGEST_TARGET})"
        for name, ingest in ((name, backend["ingest"]) for name, backend in backends.items())
    ]


def _latency_lines(backends: dict[str, Any]) -> list[str]:
    scaled = {name: backend["scale"] for name, backend in backends.items() if "scale" in backend}
    if not scaled:
        return []
    chunks = next(iter(scaled.values()))["chunks"]
    lines = [
        "",
        f"query latency, {chunks:,} chunks{'p50 ms':>12}{'p95 ms':>9}   (target p50 <= {P50_TARGET_MS:g} ms)",
    ]
    for name, scale in scaled.items():
        for mode in MODES:
            lines.append(
                f"{name + ' ' + mode:<29}{scale[mode]['p50_ms']:>12.1f}{scale[mode]['p95_ms']:>9.1f}"
            )
        lines.append(f"{name}: loading (embed+upsert) {scale['load_chunks_per_second']:.0f} chunks/s")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000, help="synthetic chunks for the latency run")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions per mode at scale")
    parser.add_argument("--ingest-rounds", type=int, default=3, help="ingestions of the corpus (median)")
    parser.add_argument("--skip-scale", action="store_true", help="only recall and ingestion on the corpus")
    parser.add_argument("--postgres", metavar="DSN", help="measure PostgreSQL + pgvector as well")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--misses", action="store_true", help="list the questions each mode missed")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2) if args.json else report(results, args.misses))
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
