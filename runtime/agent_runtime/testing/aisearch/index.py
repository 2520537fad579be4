"""One in-memory index: indexing actions, and search (text, vector, hybrid) with ordering and paging."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.knowledge.fusion import reciprocal_rank_fusion
from agent_runtime.testing.aisearch.odata import ODataFilter
from agent_runtime.testing.aisearch.schema import (
    VECTOR,
    Document,
    action_error,
    check_value,
    invalid,
    length_mismatch,
)
from agent_runtime.testing.aisearch.text import SimpleQuery, StoredDocument, TextScorer, analyze

MAX_PAGE, DEFAULT_PAGE, MAX_SKIP, MAX_ACTIONS = 1000, 50, 100_000, 1000
_KEY = re.compile(r"[A-Za-z0-9_\-=]{1,1024}")
_SEARCH_KEYS = {
    "search", "searchMode", "queryType", "searchFields", "filter", "orderby", "select", "top", "skip",
    "count", "vectorQueries", "vectorFilterMode",
}  # fmt: skip


@dataclass
class SearchIndex:
    """One index: its definition (defaults filled in), its ETag and its documents by key."""

    definition: Document
    etag: str
    stored: dict[str, StoredDocument] = field(default_factory=dict)

    @property
    def fields(self) -> dict[str, Document]:
        return {f["name"]: f for f in self.definition["fields"]}

    @property
    def key(self) -> str:
        return next(f["name"] for f in self.definition["fields"] if f["key"])

    def write(self, body: Any) -> tuple[int, Document]:
        """Apply indexing actions; the whole request fails (400) on a malformed one, before any is applied."""
        actions = body.get("value") if isinstance(body, dict) else None
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            raise invalid('The request body must be {"value": [actions]}.')
        if len(actions) > MAX_ACTIONS:
            raise invalid(f"The request is invalid. Details: actions : at most {MAX_ACTIONS} per request.")
        checked = [self._check_action(position, action) for position, action in enumerate(actions)]
        results = [self._apply(kind, document) for kind, document in checked]
        return (200 if all(r["status"] for r in results) else 207), {"value": results}

    def _check_action(self, position: int, action: Document) -> tuple[str, Document]:
        kind = action.get("@search.action", "upload")
        if kind not in ("upload", "merge", "mergeOrUpload", "delete"):
            raise action_error(position, f"Invalid value '{kind}' for '@search.action'.")
        document = {k: v for k, v in action.items() if k != "@search.action"}
        if not isinstance(document.get(self.key), str) or not document[self.key]:
            raise action_error(position, "Document key cannot be missing or empty.")
        fields = self.fields
        for name, value in document.items():
            if name not in fields:
                raise action_error(
                    position,
                    f"The property '{name}' does not exist on type 'search.documentFields'. Make sure to "
                    "only use property names that are defined by the type.",
                )
            check_value(position, fields[name], value)
        return kind, document

    def _apply(self, kind: str, document: Document) -> Document:
        key = document[self.key]
        if not _KEY.fullmatch(key):
            message = (
                f"Invalid document key: '{key}'. Keys can only contain letters, digits, underscore (_), "
                "dash (-), or equal sign (=)."
            )
            return {"key": key, "status": False, "errorMessage": message, "statusCode": 400}
        existing = self.stored.get(key)
        if kind == "delete":
            self.stored.pop(key, None)
            return {"key": key, "status": True, "errorMessage": None, "statusCode": 200}
        if kind == "merge" and existing is None:
            return {"key": key, "status": False, "errorMessage": "Document not found.", "statusCode": 404}
        if kind in ("merge", "mergeOrUpload") and existing is not None:
            document = {**existing.document, **document}
        self.stored[key] = StoredDocument(document, self._analyzed(document))
        return {"key": key, "status": True, "errorMessage": None, "statusCode": 200 if existing else 201}

    def _analyzed(self, document: Document) -> dict[str, list[tuple[int, str]]]:
        """Each searchable text field's terms; a collection's items are 100 positions apart (so that no
        phrase spans two)."""
        terms: dict[str, list[tuple[int, str]]] = {}
        for f in self.definition["fields"]:
            if _is_text(f):
                value = document.get(f["name"])
                items = value if isinstance(value, list) else [] if value is None else [value]
                terms[f["name"]] = [
                    (100 * i + p, term)
                    for i, item in enumerate(items)
                    for p, term in analyze(item, f["analyzer"])
                ]
        return terms

    def search(self, body: Any, next_link: str) -> Document:
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        if unsupported := sorted(set(body) - _SEARCH_KEYS):
            raise invalid(f"Search parameters {unsupported} are not supported by the local AI Search server.")
        if body.get("queryType", "simple") != "simple":
            raise invalid(f"queryType '{body['queryType']}' is not supported by the local AI Search server.")
        mode = body.get("searchMode", "any")
        if mode not in ("any", "all"):
            raise invalid(f"Invalid searchMode '{mode}': any or all.")
        top, skip = _integer(body, "top", None), _integer(body, "skip", 0)
        if skip is not None and skip > MAX_SKIP:
            raise invalid(
                f"Value must be between 0 and {MAX_SKIP}.\nParameter name: $skip", "ParameterValueOutOfRange"
            )
        selected = self._select(body.get("select"))
        order = self._order(body.get("orderby"))
        results = self._rank(body, mode)
        for name, descending in reversed(order):
            if name is None:
                results.sort(key=lambda hit: hit[0], reverse=descending)
            else:
                results.sort(key=lambda hit, n=name: _sortable(hit[1].document.get(n)), reverse=descending)
        size = min(DEFAULT_PAGE if top is None else top, MAX_PAGE)
        start = skip or 0
        page = results[start : start + size]
        answer: Document = {}
        if body.get("count") is True:
            answer["@odata.count"] = len(results)
        answer["value"] = [
            {"@search.score": score, **{n: stored.document.get(n) for n in selected}}
            for score, stored in page
        ]
        more = start + size < len(results) and (top is None or top > size)
        if more:
            following = {**body, "skip": start + size}
            if top is not None:
                following["top"] = top - size
            answer["@search.nextPageParameters"] = following
            answer["@odata.nextLink"] = next_link
        return answer

    def _select(self, raw: Any) -> list[str]:
        fields = self.fields
        if raw is None or raw == "*":
            return [n for n, f in fields.items() if f["retrievable"]]
        names = [n.strip() for n in str(raw).split(",")]
        for name in names:
            if name not in fields or not fields[name]["retrievable"]:
                raise invalid(
                    f"Invalid expression: '{name}' is not a retrievable field.\nParameter name: $select"
                )
        return names

    def _order(self, raw: Any) -> list[tuple[str | None, bool]]:
        order: list[tuple[str | None, bool]] = []
        for clause in [] if raw is None else str(raw).split(","):
            found = re.fullmatch(r"\s*(search\.score\(\)|\w+)(?:\s+(asc|desc))?\s*", clause)
            if found is None:
                raise invalid(f"Invalid expression: '{clause}' in orderby.\nParameter name: $orderby")
            name = None if found.group(1) == "search.score()" else found.group(1)
            if name is not None and not self.fields.get(name, {}).get("sortable"):
                raise invalid(
                    f"Invalid expression: '{name}' is not a sortable field.\nParameter name: $orderby"
                )
            order.append((name, found.group(2) == "desc"))
        return order

    def _rank(self, body: Document, mode: str) -> list[tuple[float, StoredDocument]]:
        """Matches best first: one ranking's scores, or several fused by reciprocal rank fusion."""
        condition = ODataFilter(body["filter"], self.fields) if body.get("filter") else None
        post_filter = body.get("vectorFilterMode", "preFilter")
        if post_filter not in ("preFilter", "postFilter"):
            raise invalid(f"Invalid vectorFilterMode '{post_filter}'.")
        everything = sorted(self.stored.values(), key=lambda s: s.document[self.key])
        candidates = [s for s in everything if condition is None or condition.matches(s.document)]
        post = post_filter == "postFilter"
        vector_queries = _list(body.get("vectorQueries"), "vectorQueries")
        rankings = [self._vector(query, candidates, everything, condition, post) for query in vector_queries]
        text = body.get("search")
        if text is not None or not rankings:
            rankings.insert(
                0, self._text(text, candidates, everything, body.get("searchFields"), mode == "all")
            )
        if len(rankings) == 1:
            return rankings[0]
        fused = reciprocal_rank_fusion([[s.document[self.key] for _, s in ranking] for ranking in rankings])
        return [(score, self.stored[key]) for key, score in fused]

    def _text(
        self,
        text: Any,
        candidates: list[StoredDocument],
        everything: list[StoredDocument],
        names: Any,
        all_mode: bool,
    ) -> list[tuple[float, StoredDocument]]:
        if text is not None and not isinstance(text, str):
            raise invalid("search must be a string.")
        if text is None or text.strip() in ("", "*"):
            return [(1.0, s) for s in candidates]
        fields = self.fields
        chosen = (
            [n.strip() for n in str(names).split(",")]
            if names
            else [n for n in fields if _is_text(fields[n])]
        )
        for name in chosen:
            if name not in fields or not _is_text(fields[name]):
                raise invalid(f"'{name}' is not a searchable text field.\nParameter name: searchFields")
        searchable = [fields[name] for name in chosen]
        query = SimpleQuery(text).parse()
        scorer = TextScorer(everything, searchable, all_mode)
        scored = [(scorer.score(query, s), s) for s in candidates]
        return sorted(((score, s) for score, s in scored if score is not None), key=lambda hit: -hit[0])

    def _vector(
        self,
        query: Any,
        candidates: list[StoredDocument],
        everything: list[StoredDocument],
        condition: ODataFilter | None,
        post: bool,
    ) -> list[tuple[float, StoredDocument]]:
        if not isinstance(query, dict) or query.get("kind") != "vector":
            raise invalid("Only vector queries of kind 'vector' are supported by the local AI Search server.")
        if unsupported := sorted(set(query) - {"kind", "vector", "k", "fields", "exhaustive"}):
            raise invalid(
                f"Vector query parameters {unsupported} are not supported by the local AI Search server."
            )
        vector = query.get("vector")
        if not isinstance(vector, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector
        ):
            raise invalid("A vector query needs 'vector', a list of numbers.")
        k = _integer(query, "k", DEFAULT_PAGE) or 0
        name = str(query.get("fields") or "")
        field_ = self.fields.get(name)
        if "," in name:
            raise invalid(
                "Several fields in one vector query are not supported by the local AI Search server."
            )
        if field_ is None or field_["type"] != VECTOR:
            raise invalid(f"Unknown field '{name}' in vector field list.")
        if len(vector) != field_["dimensions"]:
            raise invalid(length_mismatch(field_, len(vector)))
        scored = [
            (1 / (2 - _cosine(vector, stored.document[name])), stored)
            for stored in (everything if post else candidates)
            if stored.document.get(name) is not None
        ]
        nearest = sorted(scored, key=lambda hit: -hit[0])[:k]
        return [hit for hit in nearest if not post or condition is None or condition.matches(hit[1].document)]


def _is_text(field_: Document) -> bool:
    """A field full-text search reads: searchable and not a vector."""
    return bool(field_["searchable"]) and field_["type"] != VECTOR


def _cosine(a: list[float], b: list[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


def _sortable(value: Any) -> tuple[bool, Any]:
    """Nulls first in ascending order (and so last in descending), as the service sorts them."""
    return (value is not None, value if value is not None else 0)


def _integer(body: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise invalid(f"'{name}' must be a non-negative integer, got {value!r}.")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"'{name}' must be a list.")
    return value
