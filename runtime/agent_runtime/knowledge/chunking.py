"""Token-bounded chunks of an extracted document, each under its section's headings.

An embedding model reads a bounded number of tokens, and a passage is found best when it stays on one
topic. So a chunk never crosses a section boundary; it ends where the text ends a thought (a paragraph,
else a sentence, else a line, else a word: a word cut in two is the last resort, for words longer than a
chunk); and it starts with the last words of the chunk before it, so that a passage cut in two is still
whole in one of them. Chunk texts are verbatim slices of their section's text, stripped of the whitespace at
the cut, so that a passage can be quoted exactly.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import takewhile
from typing import NamedTuple

from .extract import ExtractedDocument

MIN_MAX_TOKENS = 16
"""The smallest chunk budget: below it, a chunk holds too few words beside its overlap to mean anything."""

PIPELINE_VERSION = 2
"""Bump when extraction or chunking changes what a document becomes: every document's fingerprint includes
it, so the next ingestion re-chunks documents whose bytes did not change."""

# Pre-tokens, as BPE tokenizers split text before merging (camelCase and digits apart from letters).
_PIECES = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|\s+|.", re.DOTALL)


def count_tokens(text: str) -> int:
    """An over-estimate of the tokens an embedding model's tokenizer makes of ``text``, without its vocabulary.

    Chunks are sized by this count, so it being high is what keeps every chunk under the model's input
    limit. Subword tokenizers (BPE such as cl100k and o200k, WordPiece, SentencePiece) first split text
    into pre-tokens (letter runs, digit groups, punctuation, whitespace), each at least one token, then
    merge frequent pieces: a common word is one token however long. Counted here:

    * a run of ASCII letters: one token per 4 letters, rounded up, so prose is over-counted; camelCase and
      ALLCaps runs are split as tokenizers split them.
    * a run of digits: one token per 3 digits (tokenizers group at most 3) plus one for the space or sign
      that tokenizers keep apart from a number.
    * any other character (punctuation, accented and non-Latin letters, emoji): one token per 2 bytes of
      UTF-8, rounded up; CJK and emoji cost 2, which covers the byte-level pieces of rare characters.
    * whitespace: nothing for a single space (it belongs to the next word's token), else one token per 4
      characters, rounded up (newlines and indentation are tokens of their own).

    Long runs of random lower-case letters (which the letter rule prices like words) are the one kind of
    text it can under-count; hashes, base64 and identifiers mix cases or digits and are over-counted.
    Counts add up over whitespace: ``count_tokens(a + " " + b) == count_tokens(a) + count_tokens(b)`` when
    neither ends nor starts with whitespace, and joining two pieces never costs more than the pieces: this
    is what lets the chunker price a chunk by its words, or by the pieces of a word it had to cut.
    """
    return sum(_piece_tokens(match.group()) for match in _PIECES.finditer(text))


def _piece_tokens(piece: str) -> int:
    first = piece[0]
    if first.isascii() and first.isalpha():
        return math.ceil(len(piece) / 4)
    if first.isascii() and first.isdigit():
        return math.ceil(len(piece) / 3) + 1
    if first.isspace():
        return 0 if piece == " " else math.ceil(len(piece) / 4)
    return math.ceil(len(piece.encode()) / 2)


@dataclass(frozen=True)
class TextChunk:
    """A chunk's position in its document (0, 1, …), its text, and the headings of its section."""

    index: int
    text: str
    headings: tuple[str, ...]


def split(document: ExtractedDocument, *, max_tokens: int = 400, overlap_tokens: int = 60) -> list[TextChunk]:
    """The document's chunks in document order: each at most ``max_tokens`` by :func:`count_tokens`.

    Consecutive chunks of one section share about ``overlap_tokens`` (whole words, from a sentence start
    when one is near); the same document always gives the same chunks.
    """
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}")
    if overlap_tokens < 0 or 2 * overlap_tokens >= max_tokens:
        raise ValueError(
            f"overlap_tokens must be at least 0 and less than half of max_tokens ({max_tokens}), "
            f"got {overlap_tokens}"
        )
    texts = (
        (section.headings, text)
        for section in document.sections
        for text in _section_chunks(section.text, max_tokens, overlap_tokens)
    )
    return [TextChunk(index, text, headings) for index, (headings, text) in enumerate(texts)]


# How good a place to cut is the gap before a unit: the higher, the better a chunk ends there.
_INSIDE_WORD, _WORD, _LINE, _SENTENCE, _PARAGRAPH = range(5)

# A unit is a word, or a sentence written without spaces (CJK), or a piece of a word too long for a chunk.
_UNITS = re.compile(r"[^\s。！？]+[。！？]*|[。！？]+")
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]]*$")


class _Unit(NamedTuple):
    start: int
    end: int
    tokens: int
    gap_tokens: int  # of the whitespace between the previous unit and this one
    strength: int  # of the gap before it, as a place to cut


def _section_chunks(text: str, max_tokens: int, overlap_tokens: int) -> Iterator[str]:
    """Greedy: fill a chunk, cut at the best gap in it, start the next one a little before the cut."""
    spans = _Spans(_units(text, max_tokens - overlap_tokens))
    first, covered = 0, 0  # the chunk's first unit; how many units the chunks before it hold
    while spans.has(first):
        last = spans.last_fitting(first, max_tokens)
        if not spans.has(last + 1):
            yield text[spans.unit(first).start : spans.unit(last).end]
            return
        cut = _cut(spans, first, range(covered + 1, last + 2), max_tokens)
        yield text[spans.unit(first).start : spans.unit(cut - 1).end]
        first, covered = _overlap_start(spans, first, cut, max_tokens, overlap_tokens), cut
        spans.forget_before(first)


class _Spans:
    """A section's units with running token totals, so that any run of them is priced in O(1).

    Units are read as a chunk needs them (up to the first that does not fit) and forgotten once no chunk can
    start before them: a section holds about a chunk's worth of units, not one object per word of the
    section (a 20 MB document of one line held ~700 MB). Indices count from the section's first unit."""

    def __init__(self, units: Iterator[_Unit]) -> None:
        self._unread = units
        self._held: list[_Unit] = []  # the units from index self._first on
        self._totals = [0]  # _totals[k] - _totals[0]: the tokens of _held[:k], with the gap before each
        self._first = 0

    def unit(self, index: int) -> _Unit:
        return self._held[index - self._first]

    def has(self, index: int) -> bool:
        """Whether the section has a unit ``index`` (reading up to it)."""
        while index >= self._first + len(self._held) and self._read():
            pass
        return index < self._first + len(self._held)

    def tokens(self, first: int, last: int) -> int:
        """Of the text from unit ``first`` to unit ``last``, inclusive."""
        start, end = first - self._first, last - self._first
        return self._totals[end + 1] - self._totals[start] - self._held[start].gap_tokens

    def last_fitting(self, first: int, budget: int) -> int:
        """The last unit of the longest run from ``first`` that costs at most ``budget`` tokens."""
        start = first - self._first
        ceiling = budget + self._totals[start] + self._held[start].gap_tokens
        while self._totals[-1] <= ceiling and self._read():  # every unit costs a token: totals only grow
            pass
        return bisect_right(self._totals, ceiling) - 2 + self._first

    def forget_before(self, index: int) -> None:
        drop = index - self._first
        del self._held[:drop], self._totals[:drop]
        self._first = index

    def _read(self) -> bool:
        unit = next(self._unread, None)
        if unit is None:
            return False
        self._held.append(unit)
        self._totals.append(self._totals[-1] + unit.gap_tokens + unit.tokens)
        return True


def _cut(spans: _Spans, first: int, candidates: range, max_tokens: int) -> int:
    """The unit that the chunk from ``first`` ends before: the best place to cut among ``candidates``.

    A cut one level weaker is worth taking when it fills the chunk past half its budget; ties go to the
    fuller chunk.
    """

    def score(cut: int) -> tuple[int, int]:
        return spans.unit(cut).strength + (2 * spans.tokens(first, cut - 1) >= max_tokens), cut

    return max(candidates, key=score)


def _overlap_start(spans: _Spans, first: int, cut: int, max_tokens: int, overlap_tokens: int) -> int:
    """Where the chunk after a cut starts: up to ``overlap_tokens`` before it, at a sentence start if near.

    The overlap must leave room for the unit at the cut; when nothing fits, the next chunk starts at the cut.
    """

    def fits(start: int) -> bool:
        return spans.tokens(start, cut - 1) <= overlap_tokens and spans.tokens(start, cut) <= max_tokens

    def score(start: int) -> tuple[int, int]:
        return spans.unit(start).strength + (2 * spans.tokens(start, cut - 1) >= overlap_tokens), -start

    return max(takewhile(fits, range(cut - 1, first, -1)), key=score, default=cut)


def _units(text: str, limit: int) -> Iterator[_Unit]:
    """The text's words, in order, those costing more than ``limit`` tokens cut into pieces that do not."""
    previous: _Unit | None = None
    for word in _UNITS.finditer(text):
        for start, end in _fragments(word.group(), limit):
            start, end = word.start() + start, word.start() + end
            if previous is None:  # the first unit: nothing before it, no gap
                previous = _Unit(start, start, 0, 0, _PARAGRAPH)
            gap = text[previous.end : start]
            strength = _strength(gap, text[previous.start : previous.end], text[start:end])
            previous = _Unit(start, end, count_tokens(text[start:end]), count_tokens(gap), strength)
            yield previous


def _strength(gap: str, before: str, after: str) -> int:
    """How good a place to cut the gap between two units is."""
    newlines = gap.count("\n")
    if newlines >= 2:
        return _PARAGRAPH
    # "e.g. the": a sentence does not go on in lower case.
    if _SENTENCE_END.search(before) and not after[0].islower():
        return _SENTENCE
    if newlines:
        return _LINE
    return _WORD if gap else _INSIDE_WORD


def _fragments(word: str, limit: int) -> Iterator[tuple[int, int]]:
    """The word whole when it costs at most ``limit`` tokens, else the longest pieces that do.

    ``limit`` leaves room for the overlap in front of a piece. Pieces are cut between code points, a last
    resort: such a "word" is a hash, a blob of data or a language written without spaces.
    """
    if count_tokens(word) <= limit:
        yield 0, len(word)
        return
    start = 0
    while start < len(word):
        # word[start:low] fits (one character costs at most 2 tokens); word[start:high] does not, or runs past
        # the end. Without whitespace a token covers at most 4 characters, which bounds a fitting piece.
        low, high = start + 1, min(len(word), start + 4 * limit) + 1
        while high - low > 1:
            middle = (low + high) // 2
            if count_tokens(word[start:middle]) <= limit:
                low = middle
            else:
                high = middle
        yield start, low
        start = low
