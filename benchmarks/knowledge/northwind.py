"""The Northwind Logistics corpus: its documents, who may read them, the questions asked of them, and its
ingestion into a knowledge index.

The corpus (``corpus/``) is a fictional company's policies, runbooks, postmortems, product documentation
and procedures, in Markdown, plain text and HTML; ``corpus/readers.yaml`` names each document's readers in
the format the runtime's folder source reads. ``questions.yaml`` holds the questions with the passage that
answers each. The retrieval benchmark and the corpus tests share what is here, so that both judge answers
the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from lsa import CorpusEmbedder

from agent_runtime.knowledge.base import EVERYONE, KnowledgeIndex, Passage
from agent_runtime.knowledge.chunking import TextChunk, split
from agent_runtime.knowledge.extract import ExtractedDocument, extract
from agent_runtime.knowledge.folder_source import READERS_FILE, FolderSource
from agent_runtime.knowledge.ingest import IngestOptions, Ingestor, embedded_text

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
QUESTIONS = HERE / "questions.yaml"
OPTIONS = IngestOptions()
"""The runtime's defaults: 400-token chunks with 60 tokens of overlap, 384-dimensional embeddings."""

OUTSIDER = "staff"
"""A principal in no group of the corpus: it reads only the documents everyone may read."""


@dataclass(frozen=True)
class Question:
    """A question and where its answer is: a document, and the section and/or phrase of the passage."""

    text: str
    document: str
    section: tuple[str, ...]
    phrase: str
    style: str

    def answered_by(self, passage: Passage) -> bool:
        """Whether ``passage`` is the expected one: same document, under the section, holding the phrase."""
        if passage.document_id != self.document:
            return False
        if self.section and passage.headings[-len(self.section) :] != self.section:
            return False
        return not self.phrase or folded(self.phrase) in folded(passage.text)


def folded(text: str) -> str:
    """Case and line breaks do not decide whether a phrase is in a passage."""
    return " ".join(text.split()).casefold()


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Question(
            text=entry["question"],
            document=entry["document"],
            section=_section(entry.get("section")),
            phrase=entry.get("phrase", ""),
            style=entry["style"],
        )
        for entry in entries
    ]


def _section(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def load_readers() -> dict[str, frozenset[str]]:
    """Each document's readers as ``corpus/readers.yaml`` lists them."""
    data = yaml.safe_load((CORPUS / READERS_FILE).read_text(encoding="utf-8"))
    return {document: frozenset(readers) for document, readers in data.items()}


def document_paths() -> list[str]:
    """Every document of the corpus, as its path relative to ``corpus/`` (the index's document id)."""
    return sorted(
        path.relative_to(CORPUS).as_posix()
        for path in CORPUS.rglob("*")
        if path.is_file() and path.name != READERS_FILE
    )


def extracted(document: str) -> ExtractedDocument:
    return extract((CORPUS / document).read_bytes(), name=document)


def chunks(document: str) -> list[TextChunk]:
    """The document's chunks exactly as ingestion cuts them."""
    return split(extracted(document), max_tokens=OPTIONS.chunk_tokens, overlap_tokens=OPTIONS.overlap_tokens)


def principals_for(readers: frozenset[str]) -> frozenset[str]:
    """A caller who may read a document with these readers: a member of its groups, or anyone at all."""
    return frozenset(readers - {EVERYONE}) or frozenset({OUTSIDER})


@cache
def embedder() -> CorpusEmbedder:
    """The benchmark's deterministic embedder, fitted once on the corpus's chunks as ingestion embeds them."""
    texts = []
    for document in document_paths():
        title = extracted(document).title
        texts.extend(embedded_text(title, chunk) for chunk in chunks(document))
    return CorpusEmbedder(texts)


async def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    """:func:`embedder` in the shape ingestion calls."""
    embed = embedder()
    return [embed(text) for text in texts]


def embed_query(text: str) -> list[float]:
    return embedder()(text)


@dataclass(frozen=True)
class Ingested:
    documents: int
    chunks: int
    seconds: float

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds


async def ingest(index: KnowledgeIndex) -> Ingested:
    """The whole corpus into ``index`` through the runtime's ingestor (extract, split, embed, replace)."""
    ingestor = Ingestor(FolderSource(CORPUS), index, embed_texts, OPTIONS)
    started = time.perf_counter()
    outcomes = await ingestor.sync()
    seconds = time.perf_counter() - started
    failed = [
        f"{outcome.document_id}: {outcome.reason}" for outcome in outcomes if outcome.action != "indexed"
    ]
    if failed:
        raise RuntimeError("documents not indexed (is the index empty?):\n" + "\n".join(failed))
    return Ingested(len(outcomes), sum(outcome.chunks for outcome in outcomes), seconds)
