"""Index definitions and documents as the service validates them, and the errors it answers with."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Document = dict[str, Any]

VECTOR = "Collection(Edm.Single)"
ENGLISH_ANALYZERS = {"en.lucene", "en.microsoft"}
_ANALYZERS = ENGLISH_ANALYZERS | {"standard.lucene"}
_SCALARS = {"Edm.String", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Boolean"}
_INDEX_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-)){0,127}")
_FIELD_NAME = re.compile(r"[A-Za-z]\w{0,127}")
_INDEX_KEYS = {"name", "fields", "vectorSearch", "@odata.context", "@odata.etag"}
_FIELD_KEYS = {
    "name", "type", "key", "retrievable", "stored", "searchable", "filterable", "sortable", "facetable",
    "analyzer", "searchAnalyzer", "indexAnalyzer", "normalizer", "dimensions", "vectorSearchProfile",
    "vectorEncoding", "synonymMaps",
}  # fmt: skip
_IMMUTABLE = ("type", "key", "stored", "searchable", "filterable", "sortable", "facetable", "analyzer")


class SearchError(Exception):
    """A refusal as the service answers it: an HTTP status and ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message: str, code: str = "InvalidRequestParameter") -> SearchError:
    """A 400 refusal (``InvalidRequestParameter`` unless ``code`` says otherwise)."""
    return SearchError(400, code, message)


def _definition_error(detail: str) -> SearchError:
    return invalid(f"The request is invalid. Details: definition : {detail}")


def action_error(position: int, detail: str) -> SearchError:
    """A 400 refusal of the indexing action at ``position`` (the whole request fails)."""
    return invalid(f"The request is invalid. Details: actions : {position}: {detail}")


# --- index definitions ---------------------------------------------------------------------------------


def _flag(raw: Mapping[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _definition_error(f"The property '{name}' of field '{raw.get('name')}' must be true or false.")
    return value


def _vector_profiles(raw: Any) -> set[str]:
    """The vector profiles whose algorithm exists and measures cosine similarity (the only metric served)."""
    raw = raw or {}
    algorithms: dict[str, str] = {}
    for algorithm in raw.get("algorithms") or []:
        kind = algorithm.get("kind")
        if kind not in ("hnsw", "exhaustiveKnn"):
            raise _definition_error(f"Vector search algorithm kind {kind!r} is not supported.")
        parameters = algorithm.get(f"{kind}Parameters") or {}
        algorithms[algorithm.get("name")] = parameters.get("metric") or "cosine"
    profiles = set()
    for profile in raw.get("profiles") or []:
        metric = algorithms.get(profile.get("algorithm"))
        if metric is None:
            raise _definition_error(
                f"The vector search profile '{profile.get('name')}' refers to an unknown algorithm "
                f"'{profile.get('algorithm')}'."
            )
        if metric != "cosine":
            raise invalid(
                f"The '{metric}' metric is not supported by the local AI Search server (cosine is)."
            )
        profiles.add(profile.get("name"))
    if set(raw) - {"algorithms", "profiles"}:
        raise invalid(
            f"vectorSearch {sorted(set(raw) - {'algorithms', 'profiles'})} are not supported locally."
        )
    return profiles


def _field(raw: Any, profiles: set[str]) -> Document:
    """One field with the service's defaults filled in, or 400 naming what does not fit its type."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("name"), str)
        or not isinstance(raw.get("type"), str)
    ):
        raise _definition_error("Every field needs a name and a type.")
    name, type_ = raw["name"], raw["type"]
    if not _FIELD_NAME.fullmatch(name):
        raise _definition_error(f"The field name '{name}' is invalid: letters, digits and underscores only.")
    if unknown := set(raw) - _FIELD_KEYS:
        raise _definition_error(f"The field '{name}' has unknown properties {sorted(unknown)}.")
    collection = type_.startswith("Collection(") and type_.endswith(")")
    element = type_[len("Collection(") : -1] if collection else type_
    vector, string = type_ == VECTOR, element == "Edm.String"
    if element not in _SCALARS and not vector:
        raise invalid(f"The field type '{type_}' of '{name}' is not supported by the local AI Search server.")
    result = {
        "name": name,
        "type": type_,
        "key": _flag(raw, "key", False),
        "retrievable": _flag(raw, "retrievable", not vector),
        "stored": _flag(raw, "stored", True),
        "searchable": _flag(raw, "searchable", string or vector),
        "filterable": _flag(raw, "filterable", not vector),
        "sortable": _flag(raw, "sortable", not collection),
        "facetable": _flag(raw, "facetable", not vector),
        "analyzer": raw.get("analyzer"),
        "dimensions": raw.get("dimensions"),
        "vectorSearchProfile": raw.get("vectorSearchProfile"),
        "synonymMaps": raw.get("synonymMaps") or [],
    }
    if any(raw.get(name) for name in ("searchAnalyzer", "indexAnalyzer", "normalizer", "vectorEncoding")):
        raise invalid(f"Field '{name}': only 'analyzer' is supported by the local AI Search server.")
    if result["synonymMaps"]:
        raise invalid(f"Field '{name}': synonym maps are not supported by the local AI Search server.")
    if result["key"] and (type_ != "Edm.String" or not result["retrievable"]):
        raise _definition_error(f"The key field '{name}' must be a retrievable field of type Edm.String.")
    if result["sortable"] and collection:
        raise _definition_error(f"The field '{name}' is a collection and cannot be sortable.")
    if result["searchable"] and not (string or vector):
        raise _definition_error(f"The field '{name}' of type '{type_}' cannot be searchable.")
    if result["analyzer"] is not None:
        if not (string and result["searchable"]):
            raise _definition_error(
                f"The field '{name}' is not a searchable string field; it has no analyzer."
            )
        if result["analyzer"] not in _ANALYZERS:
            raise invalid(
                f"The analyzer '{result['analyzer']}' is not supported by the local AI Search server."
            )
    if vector:
        dimensions = result["dimensions"]
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 2 <= dimensions <= 4096:
            raise _definition_error(
                f"The vector field '{name}' must have the property 'dimensions' set (2 to 4096)."
            )
        if result["vectorSearchProfile"] not in profiles:
            raise _definition_error(
                f"The vector field '{name}' refers to an unknown vector search profile "
                f"'{result['vectorSearchProfile']}'."
            )
        if not result["searchable"] or result["filterable"] or result["sortable"] or result["facetable"]:
            detail = f"The vector field '{name}' must be searchable, not filterable, sortable or facetable."
            raise _definition_error(detail)
    elif result["dimensions"] is not None or result["vectorSearchProfile"] is not None:
        raise _definition_error(
            f"The field '{name}' is not a vector field; it takes no dimensions or profile."
        )
    return result


def check_index(body: Any, name: str) -> Document:
    """An index definition as the service stores it (defaults filled in), or 400 saying what is wrong."""
    if not isinstance(body, dict):
        raise invalid("The request body must be an index definition (a JSON object).")
    if body.get("name") != name:
        raise invalid(f"The index name '{body.get('name')}' in the body does not match '{name}' in the URL.")
    if not _INDEX_NAME.fullmatch(name):
        raise invalid(f"Invalid index name '{name}': lower-case letters, digits or single dashes.")
    if unsupported := sorted(k for k, v in body.items() if k not in _INDEX_KEYS and v):
        raise invalid(f"Index properties {unsupported} are not supported by the local AI Search server.")
    profiles = _vector_profiles(body.get("vectorSearch"))
    if not isinstance(body.get("fields"), list) or not body["fields"]:
        raise _definition_error("The index must have fields.")
    fields = [_field(raw, profiles) for raw in body["fields"]]
    names = [f["name"] for f in fields]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise _definition_error(f"Field names must be unique: {duplicates}.")
    if sum(f["key"] for f in fields) != 1:
        raise _definition_error("The index must contain exactly one key field.")
    return {"name": name, "fields": fields, "vectorSearch": body.get("vectorSearch") or None}


def check_update(old: Document, new: Document) -> None:
    """An existing index may gain fields and change ``retrievable``; anything else needs a new index."""
    fields = {f["name"]: f for f in new["fields"]}
    for before in old["fields"]:
        after = fields.get(before["name"])
        if after is None:
            raise _definition_error(f"Existing field '{before['name']}' cannot be deleted.")
        changed = [p for p in (*_IMMUTABLE, "dimensions", "vectorSearchProfile") if before[p] != after[p]]
        if changed:
            raise invalid(
                f"Existing field '{before['name']}' cannot be changed ({', '.join(changed)}): "
                "create a new index instead.",
                "CannotChangeExistingField",
            )


# --- documents ------------------------------------------------------------------------------------------


def length_mismatch(field_: Document, length: int) -> str:
    """The service's message for a vector whose length is not its field's dimensions."""
    dimensions = field_["dimensions"]
    return (
        f"The vector field '{field_['name']}', with dimension of '{dimensions}', expects a length of "
        f"'{dimensions}'. However, the provided vector has a length of '{length}'. Please ensure that the "
        "vector length matches the expected length of the vector field."
    )


def check_value(position: int, field_: Document, value: Any) -> None:
    """400 for a value that does not fit its field's type (null fits every field)."""
    type_ = field_["type"]
    if value is None:
        return
    if type_ == VECTOR:
        if isinstance(value, list) and len(value) != field_["dimensions"]:
            raise action_error(
                position,
                f"There's a mismatch in vector dimensions. {length_mismatch(field_, len(value))}",
            )
        type_ = "Collection(Edm.Double)"
    collection = type_.startswith("Collection(")
    element = type_[len("Collection(") : -1] if collection else type_
    values = value if collection and isinstance(value, list) else [value] if not collection else None
    if values is None or not all(_fits(element, v) for v in values):
        raise action_error(position, f"Cannot convert the literal '{value}' to the expected type '{type_}'.")


def _fits(type_: str, value: Any) -> bool:
    if type_ == "Edm.String":
        return isinstance(value, str)
    if type_ == "Edm.Boolean":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if type_ == "Edm.Double":
        return True
    bound = 2**31 if type_ == "Edm.Int32" else 2**63
    return isinstance(value, int) and -bound <= value < bound
