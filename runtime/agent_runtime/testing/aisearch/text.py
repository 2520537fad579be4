"""Full-text search: the analyzers, the simple query syntax and BM25 scoring."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent_runtime.testing.aisearch.schema import ENGLISH_ANALYZERS, Document

_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
    "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to",
    "was", "will", "with",
})  # fmt: skip
_WORD = re.compile(r"\w+(?:'\w+)*")


def _stem(word: str) -> str:
    """Plural, -ing/-ed and a final -e stripped: inflections meet, as Porter's stemmer makes them meet."""
    if len(word) < 4 or not word.isalpha():
        return word
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and any(v in stem for v in "aeiouy"):
            word = stem[:-1] if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz" else stem
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def analyze(text: str, analyzer: str | None) -> list[tuple[int, str]]:
    """(position, term) pairs: lower-cased words; English also drops stop words and stems."""
    words = [word.lower() for word in _WORD.findall(text)]
    if analyzer not in ENGLISH_ANALYZERS:
        return list(enumerate(words))
    return [(i, _stem(w.removesuffix("'s"))) for i, w in enumerate(words) if w not in _STOP_WORDS]


@dataclass(frozen=True)
class _Term:
    text: str
    prefix: bool = False
    phrase: bool = False


@dataclass(frozen=True)
class _Clause:
    occur: str  # "", "+" (required) or "-" (excluded)
    node: _Term | _Group


@dataclass(frozen=True)
class _Group:
    alternatives: tuple[tuple[_Clause, ...], ...]  # clauses joined by "|"


class SimpleQuery:
    """The simple syntax parsed leniently, as the service does: stray operators are ignored, never errors."""

    def __init__(self, text: str) -> None:
        self._text, self._at = text, 0

    def parse(self) -> _Group:
        return self._group(closing=False)

    def _group(self, closing: bool) -> _Group:
        alternatives: list[list[_Clause]] = [[]]
        while self._at < len(self._text):
            char = self._text[self._at]
            if char.isspace() or char == ")":
                self._at += 1
                if char == ")" and closing:
                    break
                continue
            if char == "|":
                self._at += 1
                alternatives.append([])
                continue
            occur = char if char in "+-" else ""
            self._at += len(occur)
            if self._at < len(self._text) and self._text[self._at] == "(":
                self._at += 1
                alternatives[-1].append(_Clause(occur, self._group(closing=True)))
            elif self._at < len(self._text):
                alternatives[-1].append(_Clause(occur, self._term()))
        return _Group(tuple(tuple(clauses) for clauses in alternatives))

    def _term(self) -> _Term:
        phrase = self._text[self._at] == '"'
        self._at += phrase
        chars: list[str] = []
        prefix = False
        while self._at < len(self._text):
            char = self._text[self._at]
            if char == "\\" and self._at + 1 < len(self._text):
                chars.append(self._text[self._at + 1])
                self._at += 2
                continue
            if phrase and char == '"':
                self._at += 1
                break
            if not phrase and (char.isspace() or char in '|()"'):
                break
            self._at += 1
            if (
                not phrase
                and char == "*"
                and (self._at == len(self._text) or self._text[self._at] in " \t\n|)")
            ):
                prefix = True
            else:
                chars.append(char)
        return _Term("".join(chars), prefix=prefix, phrase=phrase)


@dataclass
class StoredDocument:
    """A document and its searchable fields' terms, analyzed once when written."""

    document: Document
    terms: dict[str, list[tuple[int, str]]]


class TextScorer:
    """BM25 (k1 = 1.2, b = 0.75) of a parsed query against one index's documents, summed over fields."""

    def __init__(self, stored: Iterable[StoredDocument], fields: list[Document], all_mode: bool) -> None:
        self._docs = list(stored)
        self._fields = fields
        self._all = all_mode
        self._lengths = {
            f["name"]: sum(len(d.terms[f["name"]]) for d in self._docs) / max(len(self._docs), 1) or 1.0
            for f in fields
        }
        self._df: dict[tuple[str, str], int] = {}

    def score(self, query: _Group, doc: StoredDocument) -> float | None:
        """The document's score, or ``None`` when it does not match."""
        return self._group(query, doc)

    def _group(self, group: _Group, doc: StoredDocument) -> float | None:
        scores = [self._clauses(clauses, doc) for clauses in group.alternatives]
        matched = [s for s in scores if s is not None]
        return sum(matched) if matched else None

    def _clauses(self, clauses: tuple[_Clause, ...], doc: StoredDocument) -> float | None:
        """``all``: every clause holds. ``any``: required (+) clauses hold and, without them, at least one
        other does; an excluded (-) clause then means "or not", as the service documents. Clauses without
        terms (stop words, lone operators) are left out, as the analyzer leaves them out."""
        results = [(c.occur, self._node(c.node, doc)) for c in clauses if self._has_terms(c.node)]
        if not results:
            return None
        positive = [r for occur, r in results if occur != "-"]
        absent = [r is None for occur, r in results if occur == "-"]
        if self._all:
            return None if None in positive or not all(absent) else sum(r for r in positive if r is not None)
        required = [r for occur, r in results if occur == "+"]
        if None in required or not (required or any(r is not None for r in positive) or any(absent)):
            return None
        return sum(r for r in positive if r is not None)

    def _has_terms(self, node: _Term | _Group) -> bool:
        if isinstance(node, _Group):
            return any(self._has_terms(c.node) for clauses in node.alternatives for c in clauses)
        if node.prefix:
            return bool(node.text)
        return any(analyze(node.text, f["analyzer"]) for f in self._fields)

    def _node(self, node: _Term | _Group, doc: StoredDocument) -> float | None:
        if isinstance(node, _Group):
            return self._group(node, doc)
        scores = [self._field(f, node, doc) for f in self._fields]
        found = [s for s in scores if s is not None]
        return sum(found) if found else None

    def _field(self, field_: Document, node: _Term, doc: StoredDocument) -> float | None:
        """The term's score in one field: BM25 per matching word (constant for a prefix, as the service)."""
        name, terms = field_["name"], doc.terms[field_["name"]]
        if node.prefix:
            return 1.0 if node.text and any(t.startswith(node.text.lower()) for _, t in terms) else None
        query = analyze(node.text, field_["analyzer"])
        words = [term for _, term in query]
        if node.phrase and len(words) > 1 and not _contains_phrase(terms, query):
            return None
        present = [w for w in words if any(term == w for _, term in terms)]
        if not present:
            return None
        return sum(self._bm25(name, w, sum(term == w for _, term in terms), len(terms)) for w in present)

    def _bm25(self, name: str, word: str, frequency: int, length: int) -> float:
        if (name, word) not in self._df:
            self._df[name, word] = sum(any(t == word for _, t in d.terms[name]) for d in self._docs)
        df, n = self._df[name, word], len(self._docs)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * frequency * 2.2 / (frequency + 1.2 * (0.25 + 0.75 * length / self._lengths[name]))


def _contains_phrase(terms: list[tuple[int, str]], phrase: list[tuple[int, str]]) -> bool:
    """Whether the phrase's terms occur at the same distances as in the query (stop words keep their gap)."""
    positions = set(terms)
    (first, word), *_ = phrase
    starts = [p for p, t in terms if t == word]
    return any(all((start + p - first, t) in positions for p, t in phrase) for start in starts)
