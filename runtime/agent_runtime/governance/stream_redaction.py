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

A text may come in *parts* (:meth:`RedactingStream.end_part`): a run's model calls, whose texts the caller
reads one after the other. Each part is then redacted as it would be alone as well as the whole text as one,
and a character leaves in clear only when neither hides it. Neither reading alone is enough: a secret split
between two parts is whole only in the whole text, while a pattern that starts with ``\\b`` or a lookbehind
(or ends with one, or a lookahead) matches a part's value alone but not after (before) a part that ends
(opens) with a letter or digit. Each reading is streamed as above (the cut is the earliest either allows,
moved back past any match of either), and earlier parts are complete, so their matches are final when they
end. Where no part has ended within the kept text the two readings are one string, read once: a text of one
part is redacted exactly as before, at the same cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import regex

from agent_runtime.governance.pattern_shape import probe, shape_of
from agent_runtime.governance.redaction import Candidate, Finding, Redactor, resolve


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
    """One streamed text: :meth:`feed` each piece as it arrives, :meth:`end_part` between its parts if it has
    several, then :meth:`finish` once."""

    def __init__(self, redaction: StreamingRedaction) -> None:
        self._redaction = redaction
        self._probes = list(redaction.probes)
        """Move-to-front: the probe that last held everything back is tried first (in prose, the word being
        written is an undecided e-mail attempt), so most pieces cost one search instead of one per pattern."""
        self._part_probes = list(redaction.probes)
        """The same, for the current part read alone."""
        self._text = ""
        """The held text, after up to ``context`` characters already released."""
        self._start = 0
        """Where the held text begins in ``_text``."""
        self._part = 0
        """Where the current part begins in ``_text``; at or before 0 all of ``_text`` is the current part's,
        and it reads the same alone as in the whole text."""
        self._ended: list[Candidate] = []
        """Matches (confirmed or not) in the held text of the parts that ended, each read alone, complete."""

    @property
    def held(self) -> int:
        """Characters received but not yet released."""
        return len(self._text) - self._start

    def feed(self, piece: str) -> Release:
        """Take the next piece; return what may be released now (possibly nothing)."""
        self._text += piece
        text, start, part = self._text, self._start, self._part
        cut = _undecided(self._probes, text, start)
        if part > 0 and cut > start:
            cut = min(cut, part + _undecided(self._part_probes, text[part:], max(0, start - part)))
        return self._release(cut, final=False)

    def end_part(self) -> None:
        """The text so far is one part (a model call's): what is held of it is redacted as this part alone,
        complete, would be, besides as the whole text; the text from here on also as a part of its own."""
        text, part = self._text, max(0, self._part)
        self._ended += _shifted(
            self._redaction.redactor.candidates(text[part:], max(0, self._start - part)), part
        )
        self._part = len(text)

    def finish(self) -> Release:
        """The text is complete: release everything still held."""
        return self._release(len(self._text), final=True)

    def _release(self, cut: int, *, final: bool) -> Release:
        text, start = self._text, self._start
        if cut <= start:
            return Release("")
        readings = self._readings(text, start)
        if not final:
            cut = _before_straddling(readings, cut, start)
            if cut <= start:
                return Release("")
        found = [resolve(c for c in reading if c.confirmed and c.start < cut) for reading in readings]
        findings = found[0] if len(found) == 1 else _merged(finding for some in found for finding in some)
        redactor = self._redaction.redactor
        released = Release(
            redactor.replace(text, findings, start, cut) if findings else text[start:cut],
            tuple(finding.kind for some in found for finding in some),
        )
        keep_from = max(0, cut - self._redaction.context)
        self._text, self._start = text[keep_from:], cut - keep_from
        if self._part > 0 or self._ended:
            self._part -= keep_from
            self._ended = _shifted((c for c in self._ended if c.start >= cut), -keep_from)
        return released

    def _readings(self, text: str, start: int) -> list[Sequence[Candidate]]:
        """The matches from ``start`` on, confirmed or not, of each reading of the held text: the whole text;
        the current part alone, when an earlier part ends within ``text``; the parts that ended, each alone."""
        redactor, part = self._redaction.redactor, self._part
        readings: list[Sequence[Candidate]] = [redactor.candidates(text, start)]
        if part > 0:
            readings.append(_shifted(redactor.candidates(text[part:], max(0, start - part)), part))
        if self._ended:
            readings.append(self._ended)
        return readings


def _undecided(probes: list[regex.Pattern[str]], text: str, start: int) -> int:
    """Where the leftmost attempt of any probe that reached the end of ``text`` starts (its length if none):
    the text from ``start`` to there is decided. A probe that holds everything back moves to the front."""
    cut = len(text)
    for index, attempt in enumerate(probes):
        undecided = attempt.search(text, start, partial=True)
        if undecided is not None and undecided.start() < cut:
            cut = undecided.start()
            if cut == start:
                if index:
                    probes.insert(0, probes.pop(index))
                return cut
    return cut


def _shifted(candidates: Iterable[Candidate], offset: int) -> list[Candidate]:
    """``candidates`` moved ``offset`` characters on."""
    return [Candidate(c.kind, c.start + offset, c.end + offset, c.confirmed) for c in candidates]


def _merged(findings: Iterable[Finding]) -> list[Finding]:
    """The findings of several readings as one, in order of position: overlapping ones become one spanning
    them all, named after the first, so every character any reading hides stays hidden."""
    merged: list[Finding] = []
    for finding in sorted(findings, key=lambda finding: (finding.start, -finding.end)):
        if merged and finding.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Finding(last.kind, last.start, max(last.end, finding.end))
        else:
            merged.append(Finding(finding.kind, finding.start, finding.end))
    return merged


def _before_straddling(readings: Sequence[Sequence[Finding]], cut: int, start: int) -> int:
    """``cut``, moved back to the start of any match of any reading that begins before it and ends after
    it (repeatedly: the new cut may split another match)."""
    moved = True
    while moved and cut > start:
        moved = False
        for reading in readings:
            for finding in reading:
                if finding.start < cut < finding.end:
                    cut, moved = finding.start, True
    return cut
