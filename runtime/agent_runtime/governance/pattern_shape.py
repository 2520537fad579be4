"""What a sensitive-data pattern can match and read, and the probe that tells a stream guard when to wait.

A streamed answer arrives in pieces, and the guard may release text only once no continuation of the stream
can change how it is redacted. Two facts about each pattern make that decidable:

- its *shape*, read from the parse tree ``re`` itself compiles from (``re._parser``; there is no public
  parser): the longest text it matches (what bounds how far back an undecided attempt starts), how far it looks behind
  a match's start (the context kept before held text) and whether it anchors to the end of the text (which a
  stream does not know yet, so such a pattern is refused);
- a *probe*: the pattern compiled by the ``regex`` package as ``(?:pattern)(?!)`` and searched with
  ``partial=True``. No attempt can succeed, so every path of every attempt is explored, and the probe
  reports the leftmost attempt that reached the end of the text — by consuming a character or by a
  lookahead — that is, the leftmost attempt whose outcome more text could change. ``\\b`` and ``\\B`` test
  the end of the text without reading past it, so the probe puts ``(?=[\\s\\S])`` before each: the same test
  anywhere else, and a read past the end at the end. (Spelling them out as lookaround alternations is
  equivalent but defeats the engine's first-character search: 23 µs instead of 4 for the API-key probe.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

import regex

LONGEST_MATCH_LIMIT = 32_768
"""The longest text a pattern may match: the most a stream guard could ever hold back for it."""

_UNLESS_AT_END = r"(?=[\s\S])"
_ANY_CHARACTER = [(sre.CATEGORY, sre.CATEGORY_SPACE), (sre.CATEGORY, sre.CATEGORY_NOT_SPACE)]
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_END_ANCHORS = (sre.AT_END, sre.AT_END_LINE, sre.AT_END_STRING)
_BOUNDARIES = (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY)


class UnstreamablePattern(ValueError):
    """The pattern cannot be checked while text streams; the message says why and what to write instead."""


@dataclass(frozen=True)
class PatternShape:
    """How much text a pattern matches and reads around a match."""

    longest: int
    lookbehind: int
    """Characters an attempt may read before its start (lookbehinds, ``\\b``, ``^`` after a newline)."""


def shape_of(source: str) -> PatternShape:
    """The shape of a valid ``re`` pattern (flags inline), or :class:`UnstreamablePattern` saying why it has
    none."""
    tree = _parser.parse(source)
    shortest, longest = tree.getwidth()
    if longest >= sre.MAXREPEAT:
        raise UnstreamablePattern(
            "it can match text of any length ('*', '+' or '{n,}'): while an answer streams, text that could "
            "still become a match is held back, so every pattern needs a longest match; use a bounded repeat "
            "such as {1,64}"
        )
    if longest > LONGEST_MATCH_LIMIT:
        raise UnstreamablePattern(
            f"it can match up to {longest} characters, more than the {LONGEST_MATCH_LIMIT} a stream may be "
            "held back for; tighten its repeats"
        )
    if shortest == 0:
        raise UnstreamablePattern("it can match empty text; a sensitive value has at least one character")
    reads = _Reads()
    reads.walk(tree)
    if reads.end_anchored:
        raise UnstreamablePattern(
            "it anchors to the end of the text ('$' or '\\Z'), which is unknown while an answer streams; "
            "match the value itself"
        )
    return PatternShape(longest=longest, lookbehind=reads.behind)


def probe(source: str) -> regex.Pattern[str]:
    """The pattern as a ``regex`` probe whose partial search finds its leftmost undecided attempt.

    One probe per pattern: an alternation of all patterns would answer the same but, lacking a common first
    character, makes the engine try every position (30 µs instead of 12 for the built-in patterns)."""
    guarded = guard_boundaries(source)
    reads = _Reads()
    reads.walk(_parser.parse(guarded))
    if reads.unguarded_boundaries:
        raise UnstreamablePattern(
            "its word boundaries (\\b, \\B) could not be located for streaming; write them as lookarounds "
            "such as (?<!\\w) and (?!\\w)"
        )
    try:
        return regex.compile(f"{_scoped(guarded)}(?!)")
    except regex.error as error:
        raise UnstreamablePattern(f"the streaming guard cannot compile it: {error}") from None


def _scoped(source: str) -> str:
    """``source`` as a group, its leading global flags (``(?i)...``) turned into the group's own."""
    leading = _LEADING_FLAGS.match(source)
    if leading is None:
        return f"(?:{source})"
    flags, rest = leading.group(1), source[leading.end() :]
    return f"(?{flags}:{rest}\n)" if "x" in flags else f"(?{flags}:{rest})"  # a verbose comment ends at \n


def guard_boundaries(source: str) -> str:
    """``source`` with ``(?=[\\s\\S])`` before each ``\\b`` and ``\\B`` outside character classes (the caller
    checks the parse tree of the result, so a boundary this scan missed refuses the pattern)."""
    out: list[str] = []
    index, class_opened_at = 0, -1  # -1: outside a character class
    while index < len(source):
        char = source[index]
        if char == "\\" and index + 1 < len(source):
            escape = source[index : index + 2]
            if class_opened_at < 0 and escape in (r"\b", r"\B"):
                out.append(_UNLESS_AT_END)
            out.append(escape)
            index += 2
            continue
        if class_opened_at < 0 and char == "[":
            class_opened_at = index + 1 + (source[index + 1 : index + 2] == "^")
        elif class_opened_at >= 0 and char == "]" and index > class_opened_at:  # a leading ] is literal
            class_opened_at = -1
        out.append(char)
        index += 1
    return "".join(out)


class _Reads:
    """Walks a parse tree for what it reads outside a match: lookbehind reach, end anchors, boundaries."""

    def __init__(self) -> None:
        self.behind = 0
        self.end_anchored = False
        self.unguarded_boundaries = 0

    def walk(self, items: Any) -> None:
        previous: Any = None
        for item in items:
            self._visit(*item, guarded=_is_end_guard(previous))
            previous = item

    def _visit(self, op: Any, av: Any, *, guarded: bool) -> None:
        if op == sre.ASSERT or op == sre.ASSERT_NOT:
            direction, sub = av
            if direction < 0:
                self.behind = max(self.behind, sub.getwidth()[1] + _reach_behind(sub))
            self.walk(sub)
        elif op == sre.AT:
            self._anchor(av, guarded)
        elif op == sre.SUBPATTERN:
            self.walk(av[-1])
        elif op == sre.BRANCH:
            for sub in av[1]:
                self.walk(sub)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            self.walk(av[2])
        elif op == sre.ATOMIC_GROUP:
            self.walk(av)
        elif op == sre.GROUPREF_EXISTS:
            self.walk(av[1])
            if av[2] is not None:
                self.walk(av[2])

    def _anchor(self, at: Any, guarded: bool) -> None:
        if at in _END_ANCHORS:
            self.end_anchored = True
        elif at in _BOUNDARIES:
            self.unguarded_boundaries += not guarded
            self.behind = max(self.behind, 1)
        elif at == sre.AT_BEGINNING_LINE:
            self.behind = max(self.behind, 1)


def _is_end_guard(item: Any) -> bool:
    """Whether a parse-tree item is ``(?=[\\s\\S])``."""
    if item is None or item[0] != sre.ASSERT or item[1][0] != 1 or len(item[1][1]) != 1:
        return False
    [(op, av)] = list(item[1][1])
    return bool(op == sre.IN and av == _ANY_CHARACTER)


def _reach_behind(sub: Any) -> int:
    inner = _Reads()
    inner.walk(sub)
    return inner.behind
