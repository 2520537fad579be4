"""Chunks of extracted documents, checked as properties over seeded random documents (prose, unicode, words
longer than a chunk, text without spaces, odd whitespace, many headings) and on the cuts they prefer."""

from __future__ import annotations

import itertools
import math
import random
import re
import tracemalloc

import pytest

from agent_runtime.knowledge.chunking import TextChunk, count_tokens, split
from agent_runtime.knowledge.extract import ExtractedDocument, Section
from agent_runtime.settings import Settings

PROSE = [
    "the",
    "a",
    "install",
    "configuration",
    "Kubernetes",
    "don't",
    "e.g.",
    "v1.2.3",
    "x_y",
    "https://example.com/a?b=c",
    "2024",
    "(note)",
    "agent",
    "runtime",
    "index",
    "documents",
    "search",
    "embedding",
    "chunk",
    "overlap",
    "tokens",
]
SIMPLE = [word for word in PROSE if word.isalpha()]
UNICODE = [
    "naïve",
    "Größe",
    "東京都",
    "привет",
    "мир",
    "مرحبا",
    "😀",
    "👍🏽",
    "—",
    "Ωμέγα",
    "日本語の文章",
    "café",
    "3,14",
    "€",
]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\n\n\n\n", " \n  \n ", "\u3000", "\u2028", " " * 40]
SETTINGS = [(16, 0), (16, 7), (24, 5), (64, 20), (128, 63), (400, 60)]
STYLES = ["prose", "unicode", "long words", "no spaces", "odd whitespace"]


def sentence(rng: random.Random, vocabulary: list[str], length: int) -> str:
    words = [rng.choice(vocabulary) for _ in range(length)]
    return " ".join([words[0].capitalize(), *words[1:]]) + rng.choice([".", ".", "!", "?", '."', ".)"])


def prose(
    rng: random.Random, paragraphs: int, sentences: int, words: int, vocabulary: list[str] = PROSE
) -> str:
    return "\n\n".join(
        " ".join(sentence(rng, vocabulary, rng.randint(1, words)) for _ in range(rng.randint(1, sentences)))
        for _ in range(paragraphs)
    )


def long_word(rng: random.Random) -> str:
    """Letters, base64, digits or CJK: random enough that a piece of it is found in one place only."""
    alphabet = rng.choice(["abcdefghijklmnopqrstuvwxyz", "aB3+/=", "0123456789", "東京都日本語の文章😀"])
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(50, 800)))


def random_text(rng: random.Random, style: str) -> str:
    if style == "prose":
        return prose(rng, rng.randint(1, 12), 10, 25)
    if style == "unicode":
        return "".join(
            rng.choice(UNICODE) + rng.choice([*SPACES[:7], "。", "！"]) for _ in range(rng.randint(1, 400))
        )
    if style == "long words":
        return " ".join(
            long_word(rng) if rng.random() < 0.2 else rng.choice(PROSE) for _ in range(rng.randint(1, 30))
        )
    if style == "no spaces":
        return "".join(rng.choice([*UNICODE, "。", "x", "42"]) for _ in range(rng.randint(1, 500)))
    return "".join(rng.choice(PROSE + UNICODE) + rng.choice(SPACES) for _ in range(rng.randint(1, 400)))


def random_document(rng: random.Random, style: str) -> ExtractedDocument:
    sections = []
    for _ in range(rng.randint(1, 6)):
        headings = tuple(rng.choice(PROSE + UNICODE) for _ in range(rng.randint(0, 4)))
        text = random_text(rng, style) if rng.random() < 0.85 else rng.choice(["", " ", "\n\n"])
        sections.append(Section(headings, text))
    return ExtractedDocument("random", tuple(sections))


def placements(text: str, chunks: list[str]) -> list[tuple[int, int]]:
    """Where each chunk sits in its section's text, as (start, end).

    Finding a placement proves that the chunks are verbatim slices of the text, stripped, in order (each
    starts after the one before and reaches further), that leave out nothing but whitespace: each starts no
    later than the first non-space after the one before, the first at the first non-space, and the last
    leaves only whitespace. Repetitive text allows several placements, so every candidate is followed.
    """
    assert all(chunk and chunk == chunk.strip() for chunk in chunks)
    if not chunks:
        assert not text.strip()
        return []

    def next_text(position: int) -> int:
        return position + len(text[position:]) - len(text[position:].lstrip())

    # layers[i]: each possible start of chunk i, with the start of chunk i - 1 it follows.
    layers = [{next_text(0): -1} if text.startswith(chunks[0], next_text(0)) else {}]
    for before, chunk in itertools.pairwise(chunks):
        layer: dict[int, int] = {}
        for previous in layers[-1]:
            end = previous + len(before)
            limit = next_text(end) + len(chunk)
            start = text.find(chunk, previous + 1, limit)
            while start != -1:
                if start + len(chunk) > end:
                    layer.setdefault(start, previous)
                start = text.find(chunk, start + 1, limit)
        assert layer, f"chunk out of place, or text lost before it: {chunk[:60]!r}"
        layers.append(layer)
    last = [start for start in layers[-1] if not text[start + len(chunks[-1]) :].strip()]
    assert last, "text lost after the last chunk"
    starts = [last[0]]
    for layer in reversed(layers[1:]):
        starts.append(layer[starts[-1]])
    return [(start, start + len(chunk)) for start, chunk in zip(reversed(starts), chunks, strict=True)]


def section_chunks(
    document: ExtractedDocument, max_tokens: int, overlap_tokens: int
) -> list[list[TextChunk]]:
    """Each section's chunks when split on its own: the whole document's must be these, in order."""
    return [
        split(ExtractedDocument("", (section,)), max_tokens=max_tokens, overlap_tokens=overlap_tokens)
        for section in document.sections
    ]


# --- count_tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("word", 1),
        ("words", 2),  # one token per 4 letters, rounded up
        ("the big fox", 3),  # a single space costs nothing
        ("camelCaseName", 4),  # camel, Case, Name
        ("HTTPServer", 3),  # HTTP, Server
        ("2024", 3),  # 202, 4, and the space or sign before a number
        ("東京", 4),  # 3 bytes of UTF-8 each
        ("😀", 2),
        ("é.", 2),
        ("a\n\nb", 3),
        ("a" + " " * 8 + "b", 4),
    ],
)
def test_count_tokens_follows_its_documented_rules(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_count_tokens_adds_up_over_whitespace_and_never_grows_by_joining() -> None:
    rng = random.Random(1)
    alphabet = "aAbBzZ09_.-/+=é東😀"
    for _ in range(3000):
        a, b = ("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(2))
        space = rng.choice(SPACES)
        assert count_tokens(a + space + b) == count_tokens(a) + count_tokens(space) + count_tokens(b)
        assert count_tokens(a + b) <= count_tokens(a) + count_tokens(b)


def test_count_tokens_is_at_least_what_any_bpe_tokenizer_needs_for_the_pieces_it_cannot_merge() -> None:
    rng = random.Random(2)
    for _ in range(1000):
        words = [rng.choice(PROSE + UNICODE) for _ in range(rng.randint(1, 50))]
        assert count_tokens(" ".join(words)) >= len(words)  # every word is at least one token
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40)))
        assert count_tokens(digits) >= math.ceil(len(digits) / 3)  # tokenizers group at most 3 digits
        cjk = "".join(rng.choice("東京都日本語の文章") for _ in range(rng.randint(1, 40)))
        assert count_tokens(cjk) >= len(cjk)
        word = long_word(rng)
        assert count_tokens(word) >= len(word) / 4


# --- split: arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens", "setting"),
    [(15, 0, "max_tokens"), (0, 0, "max_tokens"), (400, -1, "overlap_tokens"), (400, 200, "overlap_tokens")],
)
def test_split_refuses_settings_that_cannot_work(max_tokens: int, overlap_tokens: int, setting: str) -> None:
    with pytest.raises(ValueError, match=f"^{setting} must be"):
        split(
            ExtractedDocument("t", (Section((), "text"),)),
            max_tokens=max_tokens,
            overlap_tokens=overlap_tokens,
        )


@pytest.mark.parametrize(
    ("chunk_tokens", "overlap_tokens"), [(100, 60), (100, 50), (100, 49), (16, 8), (16, 7), (400, 60)]
)
def test_the_settings_refuse_at_startup_the_overlap_split_would_refuse_at_every_document(
    chunk_tokens: int, overlap_tokens: int
) -> None:
    """A runtime that starts ingests: the settings accept exactly the chunk and overlap sizes split accepts,
    and a refusal names both variables and the values that would work."""
    document = ExtractedDocument("t", (Section((), "text"),))
    try:
        split(document, max_tokens=chunk_tokens, overlap_tokens=overlap_tokens)
    except ValueError:
        expected = (
            f"AGENTSTAGE_KNOWLEDGE_OVERLAP_TOKENS ({overlap_tokens}) must be less than half of "
            f"AGENTSTAGE_KNOWLEDGE_CHUNK_TOKENS ({chunk_tokens}): lower the overlap to at most "
            f"{(chunk_tokens - 1) // 2}, or raise the chunk size above {2 * overlap_tokens}"
        )
        with pytest.raises(ValueError, match=re.escape(expected)):
            Settings(knowledge_chunk_tokens=chunk_tokens, knowledge_overlap_tokens=overlap_tokens)
    else:
        settings = Settings(knowledge_chunk_tokens=chunk_tokens, knowledge_overlap_tokens=overlap_tokens)
        assert (settings.knowledge_chunk_tokens, settings.knowledge_overlap_tokens) == (
            chunk_tokens,
            overlap_tokens,
        )


def test_the_smallest_settings_work() -> None:
    document = ExtractedDocument("t", (Section(("H",), prose(random.Random(3), 3, 5, 10)),))
    chunks = split(document, max_tokens=16, overlap_tokens=7)
    assert len(chunks) > 1 and all(count_tokens(chunk.text) <= 16 for chunk in chunks)


def test_a_document_without_sections_has_no_chunks() -> None:
    assert split(ExtractedDocument("t", ())) == []
    assert split(ExtractedDocument("t", (Section(("H",), " \n\n "),))) == []


# --- split: properties over random documents -------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), SETTINGS)
def test_random_documents_split_within_budget_losing_nothing(
    style: str, max_tokens: int, overlap_tokens: int
):
    rng = random.Random(f"{style}/{max_tokens}/{overlap_tokens}")
    for _ in range(10):
        document = random_document(rng, style)
        chunks = split(document, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
        assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
        assert split(document, max_tokens=max_tokens, overlap_tokens=overlap_tokens) == chunks
        # No chunk crosses a section: the document's chunks are its sections' chunks, in order.
        by_section = section_chunks(document, max_tokens, overlap_tokens)
        assert [(c.text, c.headings) for c in chunks] == [(c.text, c.headings) for s in by_section for c in s]
        for section, own in zip(document.sections, by_section, strict=True):
            assert all(chunk.headings == section.headings for chunk in own)
            assert all(count_tokens(chunk.text) <= max_tokens for chunk in own)
            placements(section.text, [chunk.text for chunk in own])


@pytest.mark.parametrize("style", ["prose", "unicode", "odd whitespace"])
@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), SETTINGS)
def test_words_that_fit_are_never_cut(style: str, max_tokens: int, overlap_tokens: int) -> None:
    rng = random.Random(f"{style}/{max_tokens}")
    for _ in range(12):
        text = random_text(rng, style)
        chunks = split(
            ExtractedDocument("", (Section((), text),)), max_tokens=max_tokens, overlap_tokens=overlap_tokens
        )
        for start, end in placements(text, [chunk.text for chunk in chunks]):
            for edge in (start, end):
                before = re.search(r"\S*\Z", text[:edge]).group()
                after = re.match(r"\S*", text[edge:]).group()
                # A word is cut only when it is too long to fit beside the overlap, or after a CJK full stop.
                if before and after and not before.endswith(("。", "！", "？")):
                    assert count_tokens(before + after) > max_tokens - overlap_tokens, f"cut {before}|{after}"


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [s for s in SETTINGS if s[1]])
def test_consecutive_chunks_of_a_section_overlap(max_tokens: int, overlap_tokens: int) -> None:
    rng = random.Random(max_tokens * overlap_tokens)
    overlaps = []
    for _ in range(20):
        text = prose(rng, rng.randint(1, 20), 10, 25, SIMPLE)
        chunks = split(
            ExtractedDocument("", (Section((), text),)), max_tokens=max_tokens, overlap_tokens=overlap_tokens
        )
        spans = placements(text, [chunk.text for chunk in chunks])
        for (_, previous_end), (start, _) in itertools.pairwise(spans):
            if start >= previous_end:  # only when the word it ends with is more than the overlap
                assert count_tokens(text[:previous_end].split()[-1]) > overlap_tokens
                continue
            shared = count_tokens(text[start:previous_end])
            assert shared <= overlap_tokens
            overlaps.append(shared)
    assert overlaps
    assert sum(overlaps) / len(overlaps) >= overlap_tokens / 3  # about overlap_tokens, not one word


# --- split: where it cuts ------------------------------------------------------------------------------


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    rng = random.Random(4)
    for _ in range(50):
        paragraphs = [prose(rng, 1, 4, 8) for _ in range(rng.randint(1, 30))]
        paragraphs = [p for p in paragraphs if count_tokens(p) < 60]
        text = "\n\n".join(paragraphs)
        for chunk in split(ExtractedDocument("", (Section((), text),)), max_tokens=120, overlap_tokens=0):
            assert all(part in paragraphs for part in chunk.text.split("\n\n"))


def test_a_long_paragraph_is_cut_between_sentences_and_the_overlap_starts_a_sentence() -> None:
    rng = random.Random(5)
    for _ in range(50):
        sentences = [sentence(rng, SIMPLE, rng.randint(3, 6)) for _ in range(rng.randint(10, 60))]
        text = " ".join(sentences)
        chunks = split(ExtractedDocument("", (Section((), text),)), max_tokens=100, overlap_tokens=30)
        for chunk in chunks:
            assert re.match(r"[A-Z]", chunk.text) and re.search(r"[.!?][\")]?$", chunk.text)
            assert text.startswith(chunk.text) or any(chunk.text.startswith(s) for s in sentences)


@pytest.mark.parametrize("word", ["x" * 5000, "Ab3/" * 1000, "東" * 2000, "1" * 999])
def test_a_word_longer_than_a_chunk_is_cut_into_pieces_that_fit(word: str) -> None:
    text = f"Before it. {word} after it."
    chunks = [
        chunk.text
        for chunk in split(ExtractedDocument("", (Section((), text),)), max_tokens=64, overlap_tokens=0)
    ]
    assert all(count_tokens(chunk) <= 64 for chunk in chunks)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
    # Only the word is cut, into pieces as long as fit (one more character costs at most 2 tokens).
    assert chunks[0] == "Before it." and chunks[-1].endswith(" after it.")
    assert all(count_tokens(chunk) >= 64 - 2 for chunk in chunks[1:-1])


def test_small_sections_are_not_merged_and_keep_their_headings() -> None:
    document = ExtractedDocument(
        "Guide",
        (
            Section((), "Intro."),
            Section(("Install",), "Run pip."),
            Section(("Install", "On Linux"), "Use apt."),
            Section(("Use",), "Call it."),
        ),
    )
    assert split(document) == [
        TextChunk(0, "Intro.", ()),
        TextChunk(1, "Run pip.", ("Install",)),
        TextChunk(2, "Use apt.", ("Install", "On Linux")),
        TextChunk(3, "Call it.", ("Use",)),
    ]


def test_a_long_section_is_chunked_in_memory_proportional_to_its_chunks_not_its_words() -> None:
    """One section of 500 KB (a document of one long line): the chunker holds a chunk's worth of words at a
    time, so its peak is about the chunks it returns. Holding a record per word of the section cost ~30
    times the text (736 MB for a 20 MB line, found by an audit; Lambda and Function hosts run out first)."""
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 9_000
    tracemalloc.start()
    try:
        chunks = split(ExtractedDocument("long", (Section((), text),)), max_tokens=400, overlap_tokens=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    returned = sum(len(chunk.text) for chunk in chunks)
    assert returned > len(text) and peak < 3 * returned, f"peak {peak:,} bytes for {returned:,} of chunks"
