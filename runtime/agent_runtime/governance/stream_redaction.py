"""Redaction of a text that arrives in pieces, with exactly the result of redacting it whole.

A model streams its answer in token-sized pieces, so a secret arrives split wherever the tokens fall;
redacting each piece alone finds nothing. A :class:`RedactingStream` keeps the text not yet released and,
after each piece, releases the longest prefix whose redaction no continuation of the stream can change:

1. Each pattern's probe (:func:`~agent_runtime.governance.pattern_shape.probe`) finds the leftmost position
   where an attempt to match reached the end of the text so far. Attempts that start further left were
   decided by characters already seen, so the text before the leftmost such position of any pattern (the
   *cut*) is final.
2. A decided match that starts before the cut and ends after it moves the cut back to its start, so the
   released text and the held text never share a match (the whole text's matches after the cut are then
   the matches found by scanning from the cut, as the plain path scans past a match's end).
3. The released text is redacted from :meth:`Redactor.candidates` and :func:`resolve`, the code the plain
   path runs, over the text before the cut with the characters before it kept as lookbehind context: the
   same engine, the same scan, the same overlaps.

What is held back is text that could still be part of a match, or overlaps a match that could: in prose,
the word being written. Every pattern has a longest match (see :mod:`~agent_runtime.governance.pattern_shape`),
so an undecided attempt starts at most that far back, and a match straddling the cut at most that far
before it. :meth:`RedactingStream.finish` releases the rest once the text is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent_runtime.governance.pattern_shape import probe, shape_of
from agent_runtime.governance.redaction import Candidate, Redactor, resolve


@dataclass(frozen=True)
class Release:
    """Text that may leave now (redacted), and the kinds of data that were redacted in it."""

    text: str
    kinds: tuple[str, ...] = ()


class StreamingRedaction:
    """A redactor's patterns with their probes, built once per process; :meth:`stream` starts one text."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        sources = [pattern.compiled.pattern for pattern in redactor.patterns]
        shapes = [shape_of(source) for source in sources]
        self.probes = tuple(probe(source) for source in sources)
        self.context = max(1, *(shape.lookbehind for shape in shapes))
        """Characters kept before held text: lookbehinds see them, and ``^`` knows it is not the start."""
        self.longest = max(shape.longest for shape in shapes)

    def stream(self) -> RedactingStream:
        return RedactingStream(self)


class RedactingStream:
    """One streamed text: :meth:`feed` each piece as it arrives, then :meth:`finish` once."""

    def __init__(self, redaction: StreamingRedaction) -> None:
        self._redaction = redaction
        self._probes = list(redaction.probes)
        """Move-to-front: the probe that last held everything back is tried first (in prose, the word being
        written is an undecided e-mail attempt), so most pieces cost one search instead of one per pattern."""
        self._text = ""
        """The held text, after up to ``context`` characters already released."""
        self._start = 0
        """Where the held text begins in ``_text``."""

    @property
    def held(self) -> int:
        """Characters received but not yet released."""
        return len(self._text) - self._start

    def feed(self, piece: str) -> Release:
        """Take the next piece; return what may be released now (possibly nothing)."""
        self._text += piece
        text, start = self._text, self._start
        cut = len(text)
        for index, attempt in enumerate(self._probes):
            undecided = attempt.search(text, start, partial=True)
            if undecided is not None and undecided.start() < cut:
                cut = undecided.start()
                if cut == start:
                    if index:
                        self._probes.insert(0, self._probes.pop(index))
                    return Release("")
        return self._release(cut, final=False)

    def finish(self) -> Release:
        """The text is complete: release everything still held."""
        return self._release(len(self._text), final=True)

    def _release(self, cut: int, *, final: bool) -> Release:
        text, start = self._text, self._start
        if cut <= start:
            return Release("")
        redactor = self._redaction.redactor
        candidates = redactor.candidates(text, start)
        if not final:
            cut = _before_straddling(candidates, cut, start)
            if cut <= start:
                return Release("")
        findings = resolve(c for c in candidates if c.confirmed and c.start < cut)
        released = Release(
            redactor.replace(text, findings, start, cut) if findings else text[start:cut],
            tuple(finding.kind for finding in findings),
        )
        keep_from = max(0, cut - self._redaction.context)
        self._text, self._start = text[keep_from:], cut - keep_from
        return released


def _before_straddling(candidates: Sequence[Candidate], cut: int, start: int) -> int:
    """``cut``, moved back to the start of any match that begins before it and ends after it (repeatedly:
    the new cut may split another match)."""
    moved = True
    while moved and cut > start:
        moved = False
        for candidate in candidates:
            if candidate.start < cut < candidate.end:
                cut, moved = candidate.start, True
    return cut
