"""The ingestor keeps the index exactly equal to the source: create, change, delete, redelivery, races, poison.

A local folder and the embedded SQLite index stand in for every source and backend (the emulator tests
run the same ingestor on Azurite and moto); embeddings come from the deterministic local embedder, and
every call is counted, so "a redelivered event changes nothing" is checked as "no embedding was bought".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from agent_runtime.errors import ModelError
from agent_runtime.knowledge import extract, ingest
from agent_runtime.knowledge.base import EVERYONE, KnowledgeIndex, KnowledgeQuery
from agent_runtime.knowledge.chunking import count_tokens
from agent_runtime.knowledge.documents import SourceDocument
from agent_runtime.knowledge.folder_source import READERS_FILE, FolderSource, ReadersFileError
from agent_runtime.knowledge.ingest import IngestOptions, Ingestor, Outcome, PoisonDocument
from agent_runtime.knowledge.postgres import PostgresKnowledgeIndex
from agent_runtime.knowledge.service import DocumentEvents
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex
from agent_runtime.testing.server import embed

pytestmark = pytest.mark.anyio
DIMENSIONS = 64

HANDBOOK = """# Handbook

## Leave

Employees accrue twenty-five days of annual leave, booked through the Harbor portal.

## Expenses

Receipts above forty euros need the form EXP-7 signed by a manager.
"""


class CountingEmbedder:
    """The local embedder, counting the texts it was asked for."""

    def __init__(self) -> None:
        self.texts = 0
        self.batches = 0

    async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches += 1
        self.texts += len(texts)
        return [embed(text, DIMENSIONS) for text in texts]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / READERS_FILE).write_text('"hr/*": [hr]\n"*": ["*"]\n')
    return root


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SqliteKnowledgeIndex]:
    index = await SqliteKnowledgeIndex.open(str(tmp_path / "state.db"), DIMENSIONS)
    yield index
    await index.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def any_index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KnowledgeIndex]:
    """The SQLite index, then PostgreSQL + pgvector (the test server of tests/runtime, a schema per test)."""
    if request.param == "sqlite":
        index: KnowledgeIndex = await SqliteKnowledgeIndex.open(str(tmp_path / "state.db"), DIMENSIONS)
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        index = await PostgresKnowledgeIndex.connect(dsn, DIMENSIONS, schema=f"test_{uuid.uuid4().hex[:12]}")
    yield index
    await index.close()


def ingestor(folder: Path, index: KnowledgeIndex, embedder: CountingEmbedder, **options: object) -> Ingestor:
    settings = {"dimensions": DIMENSIONS, "chunk_tokens": 40, "overlap_tokens": 5} | options
    return Ingestor(FolderSource(folder), index, embedder, IngestOptions(**settings))  # type: ignore[arg-type]


async def passages(index: KnowledgeIndex, text: str, *principals: str) -> list[tuple[str, str]]:
    query = KnowledgeQuery(text, embed(text, DIMENSIONS), frozenset(principals), top_k=20, mode="keyword")
    return [(passage.document_id, passage.text) for passage in await index.search(query)]


async def test_a_new_document_is_chunked_embedded_and_searchable_with_its_headings(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder / "handbook.md").write_text(HANDBOOK)
    outcome = await ingestor(folder, index, embedder).refresh("handbook.md")
    assert outcome.action == "indexed" and outcome.chunks >= 2
    assert embedder.texts == outcome.chunks
    [hit] = await index.search(
        KnowledgeQuery("EXP-7 form", embed("EXP-7 form", DIMENSIONS), frozenset(), top_k=1, mode="keyword")
    )
    assert (hit.document_id, hit.title, hit.headings) == ("handbook.md", "Handbook", ("Handbook", "Expenses"))
    assert hit.uri == (folder / "handbook.md").as_uri()


async def test_a_redelivered_event_changes_nothing_and_buys_no_embedding(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder / "handbook.md").write_text(HANDBOOK)
    worker = ingestor(folder, index, embedder)
    await worker.refresh("handbook.md")
    before, bought = await index.document_hashes(), embedder.texts
    for _ in range(3):
        assert await worker.refresh("handbook.md") == Outcome("handbook.md", "unchanged")
    assert (await index.document_hashes(), embedder.texts) == (before, bought)


async def test_a_changed_document_replaces_exactly_its_old_chunks(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder / "handbook.md").write_text(
        HANDBOOK + "\n## Travel\n\n" + "Trains are booked in second class. " * 30
    )
    (folder / "other.md").write_text("# Other\n\nThe canteen opens at noon.")
    worker = ingestor(folder, index, embedder)
    long = await worker.refresh("handbook.md")
    await worker.refresh("other.md")
    (folder / "handbook.md").write_text("# Handbook\n\nLeave is now thirty days.")
    short = await worker.refresh("handbook.md")
    assert short.chunks < long.chunks
    texts = await passages(index, "leave trains canteen", EVERYONE)
    assert sorted(document for document, _ in texts) == ["handbook.md", "other.md"]
    assert not any("twenty-five" in text or "Trains" in text for _, text in texts)


async def test_a_deleted_document_loses_its_chunks_and_a_second_delete_is_harmless(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder / "handbook.md").write_text(HANDBOOK)
    worker = ingestor(folder, index, embedder)
    indexed = await worker.refresh("handbook.md")
    (folder / "handbook.md").unlink()
    assert await worker.refresh("handbook.md") == Outcome("handbook.md", "removed", indexed.chunks)
    assert await worker.refresh("handbook.md") == Outcome("handbook.md", "removed", 0)
    assert await index.document_hashes() == {}


async def test_readers_come_from_the_folder_and_a_change_of_readers_alone_reindexes(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder / "hr").mkdir()
    (folder / "hr" / "salaries.md").write_text("# Salaries\n\nThe zyzzyva band pays the most.")
    worker = ingestor(folder, index, embedder)
    await worker.refresh("hr/salaries.md")
    assert await passages(index, "zyzzyva", "engineering") == []
    assert [doc for doc, _ in await passages(index, "zyzzyva", "hr")] == ["hr/salaries.md"]
    (folder / READERS_FILE).write_text('"hr/*": [hr, engineering]\n')
    outcome = await ingestor(folder, index, embedder).refresh("hr/salaries.md")
    assert outcome.action == "indexed"
    assert [doc for doc, _ in await passages(index, "zyzzyva", "engineering")] == ["hr/salaries.md"]


async def test_a_document_without_readers_is_skipped_and_its_old_chunks_removed(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder / "hr").mkdir()
    (folder / "hr" / "a.md").write_text("# A\n\nzyzzyva")
    await ingestor(folder, index, embedder).refresh("hr/a.md")
    (folder / READERS_FILE).write_text('"public/*": ["*"]\n')
    outcome = await ingestor(folder, index, embedder).refresh("hr/a.md")
    assert outcome.action == "skipped" and outcome.chunks == 1
    assert (
        "declares no readers" in outcome.reason and "AGENTSTAGE_KNOWLEDGE_DEFAULT_READERS" in outcome.reason
    )
    assert await index.document_hashes() == {}
    defaulted = await ingestor(folder, index, embedder, default_readers=frozenset({"staff"})).refresh(
        "hr/a.md"
    )
    assert defaulted.action == "indexed"
    assert [doc for doc, _ in await passages(index, "zyzzyva", "staff")] == ["hr/a.md"]


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("slides.pptx", b"PK\x03\x04 not a supported type", "unsupported"),
        ("broken.pdf", b"%PDF-1.7 this is no pdf", "broken.pdf"),
        ("big.md", b"# Big\n\n" + b"word " * 50_000, "over the limit"),
    ],
)
async def test_a_poison_document_raises_with_the_reason_and_writes_nothing(
    folder: Path,
    index: SqliteKnowledgeIndex,
    embedder: CountingEmbedder,
    name: str,
    content: bytes,
    reason: str,
) -> None:
    (folder / name).write_bytes(content)
    with pytest.raises(PoisonDocument, match=reason) as raised:
        await ingestor(folder, index, embedder, max_document_bytes=100_000).refresh(name)
    assert raised.value.document_id == name
    assert await index.document_hashes() == {} and embedder.texts == 0


async def test_a_document_changed_during_ingestion_is_ingested_again(
    folder: Path, index: SqliteKnowledgeIndex, tmp_path: Path
) -> None:
    """Worker A read v1; the file changes before A writes; A must not leave v1 in the index."""
    path = folder / "notice.md"
    path.write_text("# Notice\n\nThe office closes at five.")
    changed = False

    async def embed_and_edit(texts: Sequence[str]) -> list[list[float]]:
        nonlocal changed
        if not changed:
            changed = True
            path.write_text("# Notice\n\nThe office now closes at seven o'clock sharp.")
        return [embed(text, DIMENSIONS) for text in texts]

    worker = Ingestor(FolderSource(folder), index, embed_and_edit, IngestOptions(dimensions=DIMENSIONS))
    assert (await worker.refresh("notice.md")).action == "indexed"
    [(_, text)] = await passages(index, "office closes", EVERYONE)
    assert "seven" in text


async def test_sync_converges_the_index_on_the_folder_and_reports_every_document(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder / "a.md").write_text("# A\n\nalpha")
    (folder / "b.txt").write_text("bravo")
    (folder / ".hidden.md").write_text("never a document")
    (folder / "c.pptx").write_bytes(b"PK not supported")
    first = {
        outcome.document_id: outcome.action for outcome in await ingestor(folder, index, embedder).sync()
    }
    assert first == {"a.md": "indexed", "b.txt": "indexed", "c.pptx": "skipped"}
    (folder / "a.md").write_text("# A\n\nalpha, edited")
    (folder / "b.txt").unlink()
    seen: list[Outcome] = []
    second = await ingestor(folder, index, embedder).sync(seen.append)
    assert {o.document_id: o.action for o in second} == {
        "a.md": "indexed",
        "b.txt": "removed",
        "c.pptx": "skipped",
    }
    assert sorted(seen, key=lambda o: o.document_id) == sorted(second, key=lambda o: o.document_id)
    assert set(await index.document_hashes()) == {"a.md"}


async def test_an_event_cannot_reach_outside_the_folder(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    (folder.parent / "secret.md").write_text("# Secret")
    with pytest.raises(ValueError, match="outside the documents folder"):
        await ingestor(folder, index, embedder).refresh("../secret.md")


def test_a_malformed_readers_file_names_the_file_and_the_expected_shape(folder: Path) -> None:
    (folder / READERS_FILE).write_text("- just\n- a list\n")
    with pytest.raises(ReadersFileError, match=r"readers.yaml: expected a mapping"):
        FolderSource(folder)
    (folder / READERS_FILE).write_text('"a.md": hr\n')
    with pytest.raises(ReadersFileError, match=r"must map a path or glob to a list of group names"):
        FolderSource(folder)


# Edits that make an indexed document unindexable, and the reason each is refused with.
POISONED = [
    pytest.param(b"", "is empty", id="emptied"),
    pytest.param(b"   \n\n\t  \n", "is empty", id="whitespace"),
    pytest.param(b"new text\x00with a NUL", "NUL", id="nul"),
    pytest.param("café résumé".encode("latin-1"), "not valid utf-8", id="latin-1"),
    pytest.param(b"word " * 30_000, "over the limit", id="too-large"),
]
OLD_TEXT = "# Old\n\nThe zyzzyva password is hunter2."


def s3_event(key: str) -> dict[str, object]:
    """An S3 notification naming ``key`` (the folder source maps any object name to itself)."""
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "docs"}, "object": {"key": key}}}
    return {"Records": [record]}


@pytest.mark.parametrize(("content", "reason"), POISONED)
async def test_an_event_for_a_document_edited_into_poison_withdraws_its_old_chunks(
    folder: Path, any_index: KnowledgeIndex, embedder: CountingEmbedder, content: bytes, reason: str
) -> None:
    (folder / "notes.txt").write_text(OLD_TEXT)
    worker = ingestor(folder, any_index, embedder, max_document_bytes=100_000)
    assert (await worker.refresh("notes.txt")).action == "indexed"
    (folder / "notes.txt").write_bytes(content)
    with pytest.raises(PoisonDocument, match=reason) as raised:
        await DocumentEvents(worker, lambda _bucket, key: key).handle(s3_event("notes.txt"))
    assert await passages(any_index, "zyzzyva hunter2", EVERYONE) == []
    assert await any_index.document_hashes() == {}
    assert raised.value.removed == 1


@pytest.mark.parametrize(("content", "reason"), POISONED)
async def test_a_sync_withdraws_the_old_chunks_of_a_document_edited_into_poison_and_reports_it(
    folder: Path, any_index: KnowledgeIndex, embedder: CountingEmbedder, content: bytes, reason: str
) -> None:
    (folder / "notes.txt").write_text(OLD_TEXT)
    (folder / "other.md").write_text("# Other\n\nThe canteen opens at noon.")
    worker = ingestor(folder, any_index, embedder, max_document_bytes=100_000)
    await worker.sync()
    (folder / "notes.txt").write_bytes(content)
    for removed in (1, 0):  # the next sync reports it again, with nothing left to remove
        outcomes = {outcome.document_id: outcome for outcome in await worker.sync()}
        assert await passages(any_index, "zyzzyva hunter2", EVERYONE) == []
        assert set(await any_index.document_hashes()) == {"other.md"}
        skipped = outcomes["notes.txt"]
        assert (skipped.action, skipped.chunks, reason in skipped.reason) == ("skipped", removed, True)
        assert outcomes["other.md"].action == "unchanged"


async def test_a_link_out_of_the_folder_is_left_out_and_the_sync_goes_on(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    (folder.parent / "outside.md").write_text("# Outside\n\nThe zyzzyva secret.")
    (folder / "good.md").write_text("# Good\n\nalpha")
    (folder / "link.md").symlink_to(folder.parent / "outside.md")
    (folder / "alias.md").symlink_to(folder / "good.md")  # a link inside the folder is a document
    with caplog.at_level(logging.WARNING, logger="agentstage.knowledge"):
        outcomes = await ingestor(folder, index, embedder).sync()
    assert {outcome.document_id: outcome.action for outcome in outcomes} == {
        "alias.md": "indexed",
        "good.md": "indexed",
    }
    assert "'link.md' resolves to" in caplog.text and "outside the documents folder" in caplog.text
    assert await passages(index, "zyzzyva", EVERYONE) == []


class LockedFolder(FolderSource):
    """A folder whose ``locked.md`` cannot be read (the tests run as root, whom file modes do not stop)."""

    async def fetch(self, document_id: str, *, max_bytes: int) -> SourceDocument | None:
        if document_id == "locked.md":
            raise PermissionError(13, "Permission denied", str(self.root / document_id))
        return await super().fetch(document_id, max_bytes=max_bytes)


async def test_a_document_failing_on_its_own_is_reported_and_the_others_are_ingested(
    folder: Path, index: SqliteKnowledgeIndex, embedder: CountingEmbedder
) -> None:
    for name in ("a.md", "locked.md", "b.md"):
        (folder / name).write_text(f"# {name}\n\ntext of {name}")
    worker = Ingestor(LockedFolder(folder), index, embedder, IngestOptions(dimensions=DIMENSIONS))
    outcomes = {outcome.document_id: outcome for outcome in await worker.sync()}
    assert {name: outcome.action for name, outcome in outcomes.items()} == {
        "a.md": "indexed",
        "b.md": "indexed",
        "locked.md": "skipped",
    }
    assert outcomes["locked.md"].reason.startswith("PermissionError: [Errno 13] Permission denied")


@pytest.mark.parametrize(
    "failure",
    [ModelError("the embeddings call timed out", retryable=True), ConnectionError("refused"), TimeoutError()],
    ids=["model-error", "connection", "timeout"],
)
async def test_an_embedding_endpoint_failure_fails_the_sync_and_leaves_nothing_running(
    folder: Path, index: SqliteKnowledgeIndex, failure: Exception
) -> None:
    """Reported as skipped, an endpoint that is down would skip every document; the sync fails instead, and
    the documents in flight are stopped rather than left writing after it."""
    for name in ("a", "b", "c", "d"):
        (folder / f"{name}.md").write_text(f"# {name}\n\ntext of {name}")
    in_flight: list[asyncio.Task[object]] = []
    all_waiting = asyncio.Event()

    async def fail_once_the_others_wait(texts: Sequence[str]) -> list[list[float]]:
        if "text of a" not in texts[0]:
            in_flight.append(asyncio.current_task())  # type: ignore[arg-type]
            if len(in_flight) == 3:
                all_waiting.set()
            await asyncio.Event().wait()  # an embedding call that has not answered yet
        await all_waiting.wait()
        raise failure

    worker = Ingestor(
        FolderSource(folder), index, fail_once_the_others_wait, IngestOptions(dimensions=DIMENSIONS)
    )
    with pytest.raises(type(failure)):
        await worker.sync()
    assert len(in_flight) == 3 and all(task.done() for task in in_flight)
    assert await index.document_hashes() == {}


LONG_HEADING = " ".join(f"Section{i:05d}" for i in range(4000))  # one 44 KB heading line
NESTED = "".join(
    f"{'#' * level} {' '.join([f'Level{level}'] + ['東京'] * 150)}\n\nText at level {level}.\n\n"
    for level in range(1, 7)
)
BODY = "The body goes on about refunds within thirty days of purchase. " * 120
MODEL_LIMIT = 512
"""What the test endpoint's model reads at most, as BERT-style embedding models (e5, bge, MiniLM)."""


@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("heading.md", f"# {LONG_HEADING}\n\n{BODY}", id="huge-heading"),
        pytest.param("title.html", f"<title>{LONG_HEADING}</title><p>{BODY}</p>", id="huge-title"),
        pytest.param("nested.md", f"{NESTED}{BODY}", id="six-nested-headings"),
    ],
)
@pytest.mark.parametrize(("chunk_tokens", "overlap_tokens"), [(16, 7), (40, 5), (400, 60)])
async def test_the_title_and_headings_embedded_with_a_chunk_add_a_bounded_allowance(
    folder: Path, index: SqliteKnowledgeIndex, name: str, content: str, chunk_tokens: int, overlap_tokens: int
) -> None:
    (folder / name).write_text(content)
    embedded: list[str] = []

    async def strict(texts: Sequence[str]) -> list[list[float]]:
        """An endpoint that refuses an input over its model's limit, as real ones do (a 400)."""
        over = [count_tokens(text) for text in texts if count_tokens(text) > MODEL_LIMIT]
        if over:
            raise ModelError(f"400: input of {over[0]} tokens, over the limit of {MODEL_LIMIT}")
        embedded.extend(texts)
        return [embed(text, DIMENSIONS) for text in texts]

    options = IngestOptions(dimensions=DIMENSIONS, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)
    outcome = await Ingestor(FolderSource(folder), index, strict, options).refresh(name)
    assert outcome.action == "indexed" and outcome.chunks == len(embedded) > 1
    assert max(map(count_tokens, embedded)) <= chunk_tokens + ingest.HEADING_PATH_TOKENS
    assert all(text.split("\n\n", 1)[0].endswith("…") for text in embedded)
    found = await index.search(
        KnowledgeQuery("refunds", embed("refunds", DIMENSIONS), frozenset(), top_k=50, mode="keyword")
    )
    assert found and all(
        len(part) <= extract.MAX_HEADING_CHARS
        for passage in found
        for part in (passage.title, *passage.headings)
    )
