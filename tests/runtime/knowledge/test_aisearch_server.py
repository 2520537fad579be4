"""The local AI Search service against the documented REST shapes, with raw HTTPS requests.

One server serves the module; each test works in an index of its own. The SDK's own requests are pinned
by test_aisearch_index.py; here the server is held to what the REST reference documents: authentication,
``api-version``, index and document validation, the simple query syntax, the OData filter subset,
vector and hybrid ranking, and paging.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent_runtime.testing.aisearch import READER, AISearchServer

API = "2026-04-01"
TOKEN = "Bearer local-token"


@pytest.fixture(scope="module")
def search() -> Iterator[AISearchServer]:
    with AISearchServer(roles={"reader-token": [READER]}) as server:
        yield server


@pytest.fixture(scope="module")
def http(search: AISearchServer) -> Iterator[httpx.Client]:
    trusted = ssl.create_default_context(cafile=search.certificate)
    with httpx.Client(base_url=search.url, verify=trusted) as client:
        yield client


def call(
    http: httpx.Client,
    method: str,
    path: str,
    body: Any = None,
    *,
    version: str | None = API,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    params = {"api-version": version} if version else {}
    return http.request(
        method, path, json=body, params=params, headers={"Authorization": TOKEN, **(headers or {})}
    )


def definition(name: str, **changes: Any) -> dict[str, Any]:
    """A small index: key, English text, a tag collection, a number and a 3-dimensional vector."""
    fields = [
        {"name": "id", "type": "Edm.String", "key": True, "sortable": True},
        {"name": "text", "type": "Edm.String", "analyzer": "en.lucene"},
        {"name": "title", "type": "Edm.String", "searchable": True},
        {"name": "tags", "type": "Collection(Edm.String)"},
        {"name": "n", "type": "Edm.Int32"},
        {
            "name": "secret",
            "type": "Edm.String",
            "retrievable": False,
            "searchable": False,
            "filterable": False,
        },
        {"name": "vec", "type": "Collection(Edm.Single)", "dimensions": 3, "vectorSearchProfile": "p"},
    ]
    vector_search = {
        "algorithms": [{"name": "h", "kind": "hnsw", "hnswParameters": {"metric": "cosine"}}],
        "profiles": [{"name": "p", "algorithm": "h"}],
    }
    return {"name": name, "fields": fields, "vectorSearch": vector_search, **changes}


@pytest.fixture
def index(http: httpx.Client) -> str:
    """A fresh index's path, e.g. ``/indexes('ix-1a2b')``."""
    name = f"ix-{uuid.uuid4().hex[:10]}"
    assert call(http, "PUT", f"/indexes('{name}')", definition(name)).status_code == 201
    return f"/indexes('{name}')"


def upload(http: httpx.Client, index: str, *documents: dict[str, Any]) -> None:
    actions = [{"@search.action": "upload", **d} for d in documents]
    response = call(http, "POST", f"{index}/docs/search.index", {"value": actions})
    assert response.status_code == 200, response.text


def query(http: httpx.Client, index: str, **body: Any) -> httpx.Response:
    return call(http, "POST", f"{index}/docs/search.post.search", body)


def found(http: httpx.Client, index: str, **body: Any) -> list[str]:
    response = query(http, index, **body)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["value"]]


def refusal(response: httpx.Response, status: int = 400) -> str:
    """The error message of a refusal, after checking its status and the service's error shape."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"} and error["code"]
    return error["message"]


# --- authentication and versions ---------------------------------------------------------------------------


def test_a_request_without_a_bearer_token_is_unauthorized(http: httpx.Client, index: str) -> None:
    response = http.get(f"{index}/docs/$count", params={"api-version": API})
    assert "bearer token" in refusal(response, 401)
    response = http.get(
        f"{index}/docs/$count", params={"api-version": API}, headers={"Authorization": "Basic x"}
    )
    assert refusal(response, 401)


def test_an_api_key_is_refused_because_local_authentication_is_off(http: httpx.Client, index: str) -> None:
    response = http.get(f"{index}/docs/$count", params={"api-version": API}, headers={"api-key": "secret"})
    assert "Key-based authentication is disabled" in refusal(response, 403)


@pytest.mark.parametrize("version", [None, "2020-06-30", "latest"])
def test_api_version_is_required_and_must_know_vector_fields(
    http: httpx.Client, index: str, version: str | None
) -> None:
    assert "api-version" in refusal(call(http, "GET", f"{index}/docs/$count", version=version))


def test_roles_decide_what_a_token_may_do(http: httpx.Client, index: str) -> None:
    reader = {"Authorization": "Bearer reader-token"}
    upload(http, index, {"id": "a", "text": "alpha"})

    assert call(http, "POST", f"{index}/docs/search.post.search", {}, headers=reader).status_code == 200
    written = call(http, "POST", f"{index}/docs/search.index", {"value": [{"id": "b"}]}, headers=reader)
    assert "documents/write" in refusal(written, 403)
    assert "indexes/read" in refusal(call(http, "GET", index, headers=reader), 403)


def test_injected_failures_answer_the_next_requests_once_each(
    search: AISearchServer, http: httpx.Client, index: str
) -> None:
    search.fail_next.extend([503, 429])
    assert refusal(call(http, "GET", f"{index}/docs/$count"), 503)
    assert refusal(call(http, "GET", f"{index}/docs/$count"), 429)
    assert call(http, "GET", f"{index}/docs/$count").text == "0"


def test_requests_are_recorded_with_their_parsed_bodies(
    search: AISearchServer, http: httpx.Client, index: str
) -> None:
    query(http, index, search="alpha", top=3)
    recorded = search.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", f"{index}/docs/search.post.search")
    assert recorded.query == {"api-version": API}
    assert recorded.headers["authorization"] == TOKEN
    assert list(search.searches())[-1] == recorded.body == {"search": "alpha", "top": 3}


# --- index definitions -------------------------------------------------------------------------------------


def test_an_index_is_created_then_updated_and_read_with_the_services_defaults(
    search: AISearchServer, http: httpx.Client
) -> None:
    name = f"ix-{uuid.uuid4().hex[:10]}"
    created = call(http, "PUT", f"/indexes('{name}')", definition(name))
    again = call(http, "PUT", f"/indexes/{name}", definition(name))  # the documented path form
    read = call(http, "GET", f"/indexes('{name}')")

    assert (created.status_code, again.status_code, read.status_code) == (201, 200, 200)
    assert read.json()["@odata.etag"] == again.json()["@odata.etag"] != created.json()["@odata.etag"]
    fields = {f["name"]: f for f in read.json()["fields"]}
    assert (fields["title"]["searchable"], fields["title"]["filterable"], fields["title"]["sortable"]) == (
        True,
    ) * 3
    assert (fields["tags"]["sortable"], fields["tags"]["searchable"], fields["n"]["searchable"]) == (
        False,
        True,
        False,
    )
    assert (fields["vec"]["retrievable"], fields["vec"]["filterable"], fields["vec"]["dimensions"]) == (
        False,
        False,
        3,
    )
    assert search.definition(name)["fields"] == read.json()["fields"]


def test_a_missing_index_is_not_found(http: httpx.Client) -> None:
    assert "No index with the name 'nothing-here'" in refusal(
        call(http, "GET", "/indexes('nothing-here')"), 404
    )
    assert refusal(call(http, "POST", "/indexes('nothing-here')/docs/search.post.search", {}), 404)


def _field(name: str, **changes: Any) -> dict[str, Any]:
    fields = [{**f, **changes} if f["name"] == name else f for f in definition("x")["fields"]]
    return definition("x", fields=fields)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_field("id", key=False), "exactly one key field"),
        (_field("title", key=True), "exactly one key field"),
        (definition("x", fields=[{"name": "id", "type": "Edm.Int32", "key": True}]), "type Edm.String"),
        (_field("vec", dimensions=None), "must have the property 'dimensions' set"),
        (_field("vec", dimensions=1), "must have the property 'dimensions' set"),
        (_field("vec", vectorSearchProfile="nope"), "unknown vector search profile 'nope'"),
        (_field("vec", filterable=True), "not filterable"),
        (_field("tags", sortable=True), "cannot be sortable"),
        (_field("n", searchable=True), "cannot be searchable"),
        (_field("n", dimensions=3), "not a vector field"),
        (_field("text", colour="red"), "unknown properties ['colour']"),
        (_field("text", analyzer="fr.lucene"), "analyzer 'fr.lucene' is not supported"),
        (_field("text", type="Edm.GeographyPoint"), "not supported"),
        (definition("x", fields=[*definition("x")["fields"], {"name": "n", "type": "Edm.Int64"}]), "unique"),
        (definition("Bad_Name"), "does not match"),
        (definition("x", scoringProfiles=[{"name": "boost"}]), "scoringProfiles"),
    ],
)
def test_invalid_definitions_are_refused(http: httpx.Client, body: dict[str, Any], message: str) -> None:
    assert message in refusal(call(http, "PUT", "/indexes('x')", body))
    assert call(http, "GET", "/indexes('x')").status_code == 404


def test_an_update_may_add_fields_but_not_change_or_remove_them(http: httpx.Client, index: str) -> None:
    name = index.split("'")[1]
    grown = definition(name)
    grown["fields"].append({"name": "extra", "type": "Edm.String"})
    assert call(http, "PUT", index, grown).status_code == 200

    resized = definition(name)
    resized["fields"][-1]["dimensions"] = 4
    response = call(http, "PUT", index, resized)
    assert "Existing field 'vec' cannot be changed (dimensions)" in refusal(response)
    assert response.json()["error"]["code"] == "CannotChangeExistingField"
    assert "Existing field 'extra' cannot be deleted" in refusal(call(http, "PUT", index, definition(name)))


# --- documents ---------------------------------------------------------------------------------------------


def test_indexing_actions_answer_per_document(search: AISearchServer, http: httpx.Client, index: str) -> None:
    upload(http, index, {"id": "a", "text": "alpha", "n": 1})
    actions = [
        {"@search.action": "upload", "id": "a", "text": "alpha again"},
        {"@search.action": "mergeOrUpload", "id": "b", "n": 2},
        {"@search.action": "merge", "id": "a", "n": 7},
        {"@search.action": "merge", "id": "missing", "n": 1},
        {"@search.action": "delete", "id": "never-there"},
        {"@search.action": "upload", "id": "bad key!"},
    ]
    response = call(http, "POST", f"{index}/docs/search.index", {"value": actions})

    assert response.status_code == 207
    results = [(r["key"], r["status"], r["statusCode"]) for r in response.json()["value"]]
    assert results == [
        ("a", True, 200),
        ("b", True, 201),
        ("a", True, 200),
        ("missing", False, 404),
        ("never-there", True, 200),
        ("bad key!", False, 400),
    ]
    assert "Invalid document key" in response.json()["value"][-1]["errorMessage"]
    name = index.split("'")[1]
    assert search.documents(name) == [{"id": "a", "text": "alpha again", "n": 7}, {"id": "b", "n": 2}]
    assert call(http, "GET", f"{index}/docs/$count").text == "2"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"id": "a", "colour": "red"},
            "The property 'colour' does not exist on type 'search.documentFields'",
        ),
        ({"id": "a", "n": "seven"}, "Cannot convert the literal 'seven' to the expected type 'Edm.Int32'"),
        ({"id": "a", "n": 2**31}, "expected type 'Edm.Int32'"),
        ({"id": "a", "tags": "one"}, "expected type 'Collection(Edm.String)'"),
        ({"id": "a", "vec": [1.0, 0.0]}, "with dimension of '3', expects a length of '3'"),
        ({"id": "a", "vec": [1.0, "x", 0.0]}, "Cannot convert"),
        ({"text": "no key"}, "Document key cannot be missing or empty"),
    ],
)
def test_a_malformed_document_fails_the_whole_request(
    search: AISearchServer, http: httpx.Client, index: str, document: dict[str, Any], message: str
) -> None:
    actions = [{"@search.action": "upload", "id": "fine"}, {"@search.action": "upload", **document}]
    assert message in refusal(call(http, "POST", f"{index}/docs/search.index", {"value": actions}))
    assert search.documents(index.split("'")[1]) == []


# --- full-text search --------------------------------------------------------------------------------------


@pytest.fixture
def fauna(http: httpx.Client, index: str) -> str:
    upload(
        http,
        index,
        {"id": "1", "text": "The zyzzyva is a weevil", "title": "Weevils"},
        {"id": "2", "text": "weevils eat palm seeds and more palm seeds", "title": "Diet"},
        {"id": "3", "text": "palms grow by the sea", "title": "Palms"},
        {"id": "4", "text": "the quick brown fox", "title": "C++ (and more)"},
    )
    return index


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("zyzzyva", "any", ["1"]),
        ("weevil", "any", ["1", "2"]),  # "weevils" stems to "weevil"; the title counts too
        ("palm seeds", "any", ["2", "3"]),  # two terms beat one
        ("palm seeds", "all", ["2"]),
        ("zyzzyva fox", "all", []),
        ("zyzzyva | fox", "all", ["1", "4"]),
        ("palm +sea", "any", ["3"]),
        ("palm -sea", "all", ["2"]),
        ("zyzzyva -sea", "any", ["1", "2", "4"]),  # any mode: "-sea" means "or not sea", as documented
        ('"palm seeds"', "any", ["2"]),
        ('"seeds palm"', "any", []),
        ('"seeds and more"', "any", ["2"]),  # the stop word keeps its place in the phrase
        ('"seeds more"', "any", []),
        ("wee*", "any", ["1", "2"]),  # a prefix matches unstemmed; two fields beat one
        ("(zyzzyva | fox) +weevil", "any", ["1", "2"]),  # beside a required clause, the rest is optional
        ("(zyzzyva | fox) +weevil", "all", ["1"]),
        ("the of is", "any", []),  # stop words only (of the English analyzer): nothing to match
        ("*", "any", ["1", "2", "3", "4"]),
        (r"zyzzyva\*", "any", ["1"]),  # escaped: a literal star, which the analyzer drops
        (r"\-sea", "all", ["3"]),
        (r"\"palm \(seeds\)\"", "all", ["2"]),
    ],
)
def test_the_simple_syntax(http: httpx.Client, fauna: str, text: str, mode: str, expected: list[str]) -> None:
    assert found(http, fauna, search=text, searchMode=mode) == expected


def test_keyword_scores_are_bm25_and_search_fields_narrow_the_fields(http: httpx.Client, fauna: str) -> None:
    rows = query(http, fauna, search="weevil").json()["value"]
    scores = [row["@search.score"] for row in rows]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert found(http, fauna, search="weevils", searchFields="title") == ["1"]
    assert found(http, fauna, search="c", searchFields="title") == ["4"]  # the standard analyzer keeps "c"
    assert "not a searchable text field" in refusal(query(http, fauna, search="x", searchFields="n"))


@pytest.mark.parametrize(
    "body",
    [
        {"queryType": "full"},
        {"queryType": "semantic"},
        {"facets": ["n"]},
        {"highlight": "text"},
        {"searchMode": "most"},
    ],
)
def test_unsupported_search_parameters_are_refused(
    http: httpx.Client, index: str, body: dict[str, Any]
) -> None:
    assert refusal(query(http, index, search="x", **body))


# --- filters -----------------------------------------------------------------------------------------------


@pytest.fixture
def tagged(http: httpx.Client, index: str) -> str:
    upload(
        http,
        index,
        {"id": "a", "title": "O'Brien", "tags": ["hr", "team 'a', b|c"], "n": 1},
        {"id": "b", "title": "plain", "tags": ["eng"], "n": 5},
        {"id": "c", "title": "empty", "tags": [], "n": None},
        {"id": "d", "title": "also plain", "tags": ["*"], "n": 10},
    )
    return index


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("n eq 5", ["b"]),
        ("n ne 5", ["a", "c", "d"]),  # null is not 5
        ("n ge 5", ["b", "d"]),
        ("n lt 5", ["a"]),  # null is neither less nor greater
        ("n gt 1 and n le 5", ["b"]),
        ("n eq 1 or title eq 'plain'", ["a", "b"]),
        ("not (n eq 1 or n eq null)", ["b", "d"]),
        ("n eq null", ["c"]),
        ("title eq 'O''Brien'", ["a"]),
        ("title eq 'O'", []),
        ("id gt 'b'", ["c", "d"]),
        ("tags/any(t: t eq 'hr')", ["a"]),
        ("tags/any(t: t eq 'eng' or t eq '*')", ["b", "d"]),
        ("tags/any()", ["a", "b", "d"]),
        ("not tags/any()", ["c"]),
        ("tags/all(t: t ne 'hr')", ["b", "c", "d"]),
        ("tags/all(t: not search.in(t, 'hr,eng'))", ["c", "d"]),
        ("tags/any(t: search.in(t, 'eng, hr'))", ["a", "b"]),  # default delimiters: space and comma
        ("tags/any(t: search.in(t, 'team ''a'', b|c', '|'))", []),  # split on | only: two values, no match
        ("tags/any(t: search.in(t, 'nobody|team ''a'', b|c', '!'))", []),
        ("tags/any(t: search.in(t, 'x|team ''a'', b|c|*', '|'))", ["d"]),
        ("tags/any(t: search.in(t, 'x!team ''a'', b|c', '!'))", ["a"]),
        ("search.in(title, 'plain|empty', '|')", ["b", "c"]),
        ("true", ["a", "b", "c", "d"]),
        ("(((n eq 5)))", ["b"]),
    ],
)
def test_filters(http: httpx.Client, tagged: str, condition: str, expected: list[str]) -> None:
    assert sorted(found(http, tagged, filter=condition)) == expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("n eq", "Syntax error at position 4"),
        ("n eq 5 and", "Syntax error"),
        ("(n eq 5", "Syntax error"),
        ("title eq 'unterminated", "Syntax error at position 9"),
        ("title eq 'a' 'b'", "Syntax error"),
        ("n = 5", "Syntax error at position 2"),
        ("colour eq 'red'", "Could not find a property named 'colour'"),
        ("secret eq 'x'", "not filterable"),
        ("n eq 'five'", "Cannot compare values of types"),
        ("title gt 5", "Cannot compare values of types"),
        ("tags eq 'hr'", "can only be filtered with 'any' or 'all'"),
        ("5 eq 5", "one field (or range variable) and one constant"),
        ("n eq n", "one field (or range variable) and one constant"),
        ("n lt null", "null cannot be compared with 'lt'"),
        ("title/any(t: t eq 'x')", "applies to collection fields"),
        ("tags/any(t: t eq 'a' and t eq 'b')", "only eq and in on the range variable, combined with 'or'"),
        ("tags/any(t: t ne 'a')", "only eq and in"),
        ("tags/all(t: t eq 'a')", "only ne and not in on the range variable, combined with 'and'"),
        ("tags/any(t: n eq 1)", "only eq and in"),
        ("search.ismatch('x')", "The function 'search.ismatch' is not supported"),
        ("search.in(n, '1,2')", "search.in applies to a string field"),
        ("search.in(title, 'a', '')", "at least one delimiter"),
    ],
)
def test_invalid_filters_are_refused_with_the_reason(
    http: httpx.Client, tagged: str, condition: str, message: str
) -> None:
    assert message in refusal(query(http, tagged, filter=condition))


# --- vectors and hybrid ranking ----------------------------------------------------------------------------


@pytest.fixture
def vectors(http: httpx.Client, index: str) -> str:
    upload(
        http,
        index,
        {"id": "x", "text": "zyzzyva", "vec": [1.0, 0.0, 0.0], "tags": ["hr"]},
        {"id": "y", "text": "nothing", "vec": [0.8, 0.6, 0.0], "tags": ["eng"]},
        {"id": "z", "text": "zyzzyva again and again", "vec": [0.0, 0.0, 1.0], "tags": ["eng"]},
        {"id": "w", "text": "no vector"},
    )
    return index


def test_vector_queries_rank_by_cosine_and_score_as_the_service(http: httpx.Client, vectors: str) -> None:
    nearest = {"kind": "vector", "vector": [1.0, 0.0, 0.0], "k": 2, "fields": "vec"}
    rows = query(http, vectors, vectorQueries=[nearest]).json()["value"]

    assert [row["id"] for row in rows] == ["x", "y"]
    assert [row["@search.score"] for row in rows] == pytest.approx([1.0, 1 / (2 - 0.8)])
    assert "vec" not in rows[0]  # vectors are not retrievable
    assert found(http, vectors, vectorQueries=[{**nearest, "k": 10}]) == ["x", "y", "z"]


def test_vector_filters_apply_before_or_after_the_nearest_neighbours(
    http: httpx.Client, vectors: str
) -> None:
    nearest = [{"kind": "vector", "vector": [1.0, 0.0, 0.0], "k": 1, "fields": "vec"}]
    eng = "tags/any(t: t eq 'eng')"
    assert found(http, vectors, vectorQueries=nearest, filter=eng) == ["y"]
    assert found(http, vectors, vectorQueries=nearest, filter=eng, vectorFilterMode="postFilter") == []


def test_a_hybrid_query_fuses_the_rankings_by_reciprocal_rank(http: httpx.Client, vectors: str) -> None:
    nearest = {"kind": "vector", "vector": [0.0, 0.6, 0.8], "k": 3, "fields": "vec"}
    rows = query(http, vectors, search="zyzzyva", vectorQueries=[nearest]).json()["value"]

    # text: x, z (x's one word outweighs z's one of four); vector: z, y, x
    assert [row["id"] for row in rows] == ["z", "x", "y"]
    expected = [1 / 62 + 1 / 61, 1 / 61 + 1 / 63, 1 / 62]
    assert [row["@search.score"] for row in rows] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("vector_query", "message"),
    [
        ({"kind": "vector", "vector": [1.0, 0.0], "k": 1, "fields": "vec"}, "with dimension of '3', expects"),
        ({"kind": "vector", "vector": [1.0, 0.0, 0.0], "k": 1, "fields": "text"}, "Unknown field 'text'"),
        ({"kind": "text", "text": "zyzzyva", "k": 1, "fields": "vec"}, "of kind 'vector'"),
        ({"kind": "vector", "vector": [1.0, 0.0, 0.0], "k": -1, "fields": "vec"}, "non-negative integer"),
    ],
)
def test_invalid_vector_queries_are_refused(
    http: httpx.Client, vectors: str, vector_query: dict[str, Any], message: str
) -> None:
    assert message in refusal(query(http, vectors, vectorQueries=[vector_query]))


# --- shaping and paging ------------------------------------------------------------------------------------


def test_select_orderby_top_skip_and_count(http: httpx.Client, tagged: str) -> None:
    body = query(http, tagged, select="id, n", orderby="n desc, id", top=2, skip=1, count=True).json()

    assert body["@odata.count"] == 4
    assert [{k: v for k, v in row.items() if k != "@search.score"} for row in body["value"]] == [
        {"id": "b", "n": 5},
        {"id": "a", "n": 1},
    ]
    assert found(http, tagged, orderby="n asc") == ["c", "a", "b", "d"]  # nulls first when ascending
    assert "not a sortable field" in refusal(query(http, tagged, orderby="tags"))
    assert "not a retrievable field" in refusal(query(http, tagged, select="secret"))
    assert "not a retrievable field" in refusal(query(http, tagged, select="colour"))


def test_without_top_results_come_50_per_page_with_the_next_pages_parameters(
    http: httpx.Client, index: str
) -> None:
    upload(http, index, *({"id": f"d{i:03d}", "n": i} for i in range(120)))
    first = query(http, index, filter="n ge 0", orderby="n").json()

    assert len(first["value"]) == 50
    assert first["@search.nextPageParameters"] == {"filter": "n ge 0", "orderby": "n", "skip": 50}
    assert first["@odata.nextLink"].endswith(f"{index}/docs/search.post.search?api-version={API}")
    second = query(http, index, **first["@search.nextPageParameters"]).json()
    third = query(http, index, **second["@search.nextPageParameters"]).json()
    assert [len(second["value"]), len(third["value"])] == [50, 20]
    assert "@search.nextPageParameters" not in third and "@odata.nextLink" not in third
    ids = [row["id"] for page in (first, second, third) for row in page["value"]]
    assert ids == [f"d{i:03d}" for i in range(120)]


def test_a_page_holds_at_most_1000_results_and_skip_stops_at_100000(http: httpx.Client, index: str) -> None:
    for start in range(0, 1200, 600):
        upload(http, index, *({"id": f"d{i:04d}"} for i in range(start, start + 600)))
    first = query(http, index, top=1100, orderby="id").json()

    assert len(first["value"]) == 1000
    assert first["@search.nextPageParameters"] == {"top": 100, "orderby": "id", "skip": 1000}
    rest = query(http, index, **first["@search.nextPageParameters"]).json()
    assert [row["id"] for row in rest["value"]] == [f"d{i:04d}" for i in range(1000, 1100)]
    assert "@search.nextPageParameters" not in rest
    assert "@search.nextPageParameters" not in query(http, index, top=1000).json()
    assert "between 0 and 100000" in refusal(query(http, index, skip=100_001))


def test_cosine_of_the_zero_vector_scores_as_orthogonal(http: httpx.Client, index: str) -> None:
    upload(http, index, {"id": "zero", "vec": [0.0, 0.0, 0.0]})
    rows = query(
        http, index, vectorQueries=[{"kind": "vector", "vector": [1, 0, 0], "k": 1, "fields": "vec"}]
    )
    assert [row["@search.score"] for row in rows.json()["value"]] == [pytest.approx(0.5)]
