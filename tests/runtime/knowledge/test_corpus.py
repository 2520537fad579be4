"""The Northwind corpus of the retrieval benchmark (benchmarks/knowledge): well-formed, and measured.

The benchmark's figures are only as good as its questions: each must point at a passage that really is in
its document and that ingestion really produces as one chunk, or a mode is charged with a miss nobody could
have hit. The last test runs the recall comparison the README quotes, so that the claim that hybrid search
is at least as good as each mode alone fails here as soon as it stops being true.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks" / "knowledge"))

import northwind
import retrieval

from agent_runtime.knowledge.base import Passage

QUESTIONS = northwind.load_questions()
DOCUMENTS = northwind.document_paths()


def test_every_document_has_readers_and_every_readers_entry_a_document() -> None:
    readers = northwind.load_readers()
    assert sorted(readers) == DOCUMENTS
    assert all(readers.values()), "a document without readers is never indexed"


def test_the_corpus_mixes_formats_and_is_a_few_hundred_chunks() -> None:
    assert {Path(document).suffix for document in DOCUMENTS} >= {".md", ".txt", ".html"}
    chunks = sum(len(northwind.chunks(document)) for document in DOCUMENTS)
    assert 250 <= chunks <= 800


def test_there_are_at_least_40_questions_of_both_styles() -> None:
    assert len(QUESTIONS) >= 40
    assert {question.style for question in QUESTIONS} == {"exact", "paraphrase"}
    assert len({question.text for question in QUESTIONS}) == len(QUESTIONS)


@pytest.mark.parametrize("question", QUESTIONS, ids=lambda question: question.text[:48])
def test_the_expected_passage_is_in_its_document(question: northwind.Question) -> None:
    assert question.document in DOCUMENTS
    assert question.section or question.phrase, "say where the answer is: a section, a phrase or both"
    document = northwind.extracted(question.document)
    if question.section:
        paths = {section.headings[-len(question.section) :] for section in document.sections}
        assert question.section in paths, f"no section {question.section} in {question.document}"
    if question.phrase:
        text = northwind.folded(" ".join(section.text for section in document.sections))
        assert northwind.folded(question.phrase) in text, f"{question.phrase!r} not in the text"
    passages = [
        Passage(question.document, chunk.index, chunk.text, "", document.title, chunk.headings, 0.0)
        for chunk in northwind.chunks(question.document)
    ]
    assert any(question.answered_by(passage) for passage in passages), "no single chunk holds the answer"


@pytest.mark.anyio
async def test_hybrid_search_finds_at_least_as_much_as_each_mode_alone(tmp_path: Path) -> None:
    async with retrieval.sqlite_indexes(tmp_path)("recall") as index:
        await northwind.ingest(index)
        results = await retrieval.evaluate(index, QUESTIONS)
        assert await retrieval.leaked_passages(index, QUESTIONS) == 0
    hybrid = results["hybrid"]
    for mode in ("keyword", "vector"):
        alone = results[mode]
        figures = (
            f"hybrid {hybrid['recall_at_5']:.2f}/{hybrid['mrr']:.2f}, "
            f"{mode} {alone['recall_at_5']:.2f}/{alone['mrr']:.2f}"
        )
        assert hybrid["recall_at_5"] >= alone["recall_at_5"], f"recall@5 {figures}"
        assert hybrid["mrr"] >= alone["mrr"], f"MRR@5 {figures}"
    assert retrieval.hybrid_beats_each(results)
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    for mode, score in results.items():
        row = f"| {mode} | {score['recall_at_5']:.2f} | {score['mrr']:.2f} |"
        assert row in readme, f"README.md's retrieval table should read {row!r}"


def test_the_readmes_ingest_example_counts_the_corpus() -> None:
    size = retrieval.corpus_size()
    chunks = sum(len(northwind.chunks(document)) for document in northwind.document_paths())
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    line = f"{size['documents']} documents: {size['documents']} indexed ({chunks} chunks)"
    assert line in readme, f"README.md's ingest example should say {line!r}"
