"""The REST API over the account: routes, headers, signatures and the JSON bodies the SDK parses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent_runtime.testing.cosmos.account import CosmosAccount, Partition, QueryScope, Result, check_id
from agent_runtime.testing.cosmos.base import REGION, REQUEST_CHARGE, CosmosError, Document, bad_request
from agent_runtime.testing.cosmos.query import parse_query


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server saw it (path percent-decoded, header names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]


def _signed_resource(segments: Sequence[str]) -> tuple[str, set[str]]:
    """The resource type and the resource links an account-key signature may cover for this path.

    A path ending in an id names that resource (``dbs/d/colls/c`` is ``colls``, link ``dbs/d/colls/c``); one
    ending in a type is a feed of its parent (``dbs/d/colls/c/docs`` is ``docs``, link ``dbs/d/colls/c``).
    The SDK signs name-based links as they are, but takes a link whose database segment looks like a
    resource id (eight base64 characters) for a ``_self`` link and signs only its last id, lower-cased.
    """
    if len(segments) % 2:
        kind, owner = segments[-1], segments[:-1]
    else:
        kind, owner = (segments[-2], segments) if segments else ("", segments)
    links = {"/".join(owner)}
    if owner:
        links.add(owner[-1].lower())
    return kind, links


def _authorization_fields(header: str) -> dict[str, str]:
    """``type=master&ver=1.0&sig=...`` (URL-encoded for key signatures) as a dict; a signature may end in ``=``."""
    pairs = (part.split("=", 1) for part in unquote(header).split("&") if "=" in part)
    return {name: value for name, value in pairs}


def _check_authorization(request: Request, segments: Sequence[str], key: str) -> None:
    """401 unless the request carries an Entra ID token or a valid account-key signature."""
    header = request.headers.get("authorization")
    if not header:
        raise CosmosError(401, "Unauthorized", "Required Header authorization is missing.")
    fields = _authorization_fields(header)
    if fields.get("type") == "aad" and fields.get("sig"):
        return
    if fields.get("type") != "master":
        raise CosmosError(
            401, "Unauthorized", "The authorization header is neither an AAD token nor a key signature."
        )
    kind, links = _signed_resource(segments)
    date = request.headers.get("x-ms-date", "").lower()
    secret = base64.b64decode(key)
    for link in links:
        text = f"{request.method.lower()}\n{kind.lower()}\n{link}\n{date}\n\n"
        expected = base64.b64encode(hmac.new(secret, text.encode(), hashlib.sha256).digest()).decode()
        if hmac.compare_digest(expected, fields.get("sig", "")):
            return
    raise CosmosError(
        401, "Unauthorized", "The input authorization token can't serve the request (bad signature)."
    )


@dataclass
class _Call:
    """One request being served: the account, the ids in its path, its headers and its JSON body."""

    account: CosmosAccount
    request: Request
    ids: list[str]
    body: Any

    @property
    def database(self) -> str:
        return self.ids[0]

    @property
    def container(self) -> str:
        return self.ids[1]

    @property
    def item_id(self) -> str:
        return self.ids[2]

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def flag(self, name: str) -> bool:
        return (self.header(name) or "").lower() == "true"

    def partition_key(self) -> Any:
        header = self.header("x-ms-documentdb-partitionkey")
        if header is None:
            raise bad_request("the request needs a partition key (x-ms-documentdb-partitionkey)")
        try:
            return json.loads(header)
        except ValueError:
            raise bad_request(f"malformed partition key header {header!r}") from None

    def item(self, action: Callable[[Partition], Result]) -> Result:
        """Run an item operation in the logical partition the request's partition key header names."""
        return self.account.item(self.database, self.container, self.partition_key(), action)

    def if_match(self) -> str | None:
        """The ``If-Match`` ETag; ``If-None-Match`` on items is refused rather than ignored."""
        if self.header("if-none-match") is not None:
            raise bad_request("If-None-Match is not supported on items by the local server")
        return self.header("if-match")


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    media = None if body is None else "application/json"
    return Response(content, status_code=status, headers=dict(headers or {}), media_type=media)


def _resource(status: int, properties: Document) -> Response:
    return _json(status, properties, {"etag": properties["_etag"]})


def _account_properties(call: _Call) -> Response:
    endpoint = f"{call.request.url.scheme}://{call.request.url.netloc}/"
    location = {"name": REGION, "databaseAccountEndpoint": endpoint}
    return _json(
        200,
        {
            "id": call.request.url.hostname,
            "_self": "",
            "_rid": call.request.url.netloc,
            "media": "//media/",
            "addresses": "//addresses/",
            "_dbs": "//dbs/",
            "writableLocations": [location],
            "readableLocations": [location],
            "enableMultipleWriteLocations": False,
            "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
        },
    )


def _create_database(call: _Call) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    return _resource(201, call.account.create_database(check_id(body.get("id"), "a database id")))


def _read_database(call: _Call) -> Response:
    return _resource(200, call.account.read_database(call.database))


def _create_container(call: _Call) -> Response:
    return _resource(201, call.account.create_container(call.database, call.body))


def _read_container(call: _Call) -> Response:
    return _resource(200, call.account.read_container(call.database, call.container))


def _partition_key_ranges(call: _Call) -> Response:
    """The one range covering every key; its feed ETag never changes, so a refresh gets 304 at once (the
    SDK reads this feed as a change feed and stops only at 304 Not Modified)."""
    container = call.account.read_container(call.database, call.container)
    etag = f'"{container["_rid"]}-ranges"'
    if call.header("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag})
    whole = {
        "id": "0",
        "_rid": container["_rid"],
        "_self": f"{container['_self']}pkranges/0/",
        "_etag": etag,
        "_ts": container["_ts"],
        "minInclusive": "",
        "maxExclusive": "FF",
        "ridPrefix": 0,
        "throughputFraction": 1.0,
        "status": "online",
        "parents": [],
    }
    body = {"_rid": container["_rid"], "PartitionKeyRanges": [whole], "_count": 1}
    return _json(200, body, {"etag": etag, "x-ms-item-count": "1"})


def _document_response(call: _Call, result: Result) -> Response:
    document = result.document
    if document is None:
        return _json(result.status, None)
    minimal = call.header("prefer") == "return=minimal" and call.request.method != "GET"
    return _json(result.status, None if minimal else document, {"etag": document["_etag"]})


def _post_documents(call: _Call) -> Response:
    """POST to a container's docs feed: a query, a transactional batch, an upsert or a create."""
    if call.flag("x-ms-documentdb-isquery") or call.header("content-type") == "application/query+json":
        return _query(call)
    if call.flag("x-ms-cosmos-is-batch-request"):
        return _batch(call)
    if_match = call.if_match()
    if call.flag("x-ms-documentdb-is-upsert"):
        return _document_response(call, call.item(lambda partition: partition.upsert(call.body, if_match)))
    return _document_response(call, call.item(lambda partition: partition.create(call.body)))


def _read_document(call: _Call) -> Response:
    id_, _ = call.item_id, call.if_match()
    return _document_response(call, call.item(lambda partition: partition.read(id_)))


def _replace_document(call: _Call) -> Response:
    id_, if_match = call.item_id, call.if_match()
    return _document_response(call, call.item(lambda partition: partition.replace(id_, call.body, if_match)))


def _delete_document(call: _Call) -> Response:
    id_, if_match = call.item_id, call.if_match()
    call.item(lambda partition: partition.delete(id_, if_match))
    return _json(204, None)


def _batch_entry(outcome: Result | CosmosError) -> Document:
    if isinstance(outcome, CosmosError):
        return {"statusCode": outcome.status, "requestCharge": 0.0, "message": outcome.message}
    entry: Document = {"statusCode": outcome.status, "requestCharge": float(REQUEST_CHARGE)}
    if outcome.document is not None:
        entry |= {"eTag": outcome.document["_etag"], "resourceBody": outcome.document}
    return entry


def _batch(call: _Call) -> Response:
    """A failed batch is still a 2xx answer, 207 Multi-Status: the SDK raises ``CosmosBatchOperationError``
    from the per-operation ``statusCode`` values, but only when the HTTP status is below 400."""
    outcomes = call.account.batch(call.database, call.container, call.partition_key(), call.body)
    failed = any(isinstance(outcome, CosmosError) for outcome in outcomes)
    return _json(207 if failed else 200, [_batch_entry(outcome) for outcome in outcomes])


def _query_scope(call: _Call) -> QueryScope:
    if call.header("x-ms-documentdb-partitionkey") is not None:
        return QueryScope(key=call.partition_key())
    start, end = call.header("x-ms-start-epk"), call.header("x-ms-end-epk")
    if start is not None or end is not None:
        return QueryScope(epk_range=(start or "", end or "FF"))
    if call.flag("x-ms-documentdb-query-enablecrosspartition"):
        return QueryScope()
    raise bad_request(
        "Cross partition query is required but disabled (x-ms-documentdb-query-enablecrosspartition)"
    )


def _query(call: _Call) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    if not isinstance(body.get("query"), str):
        raise bad_request('a query body is {"query": "...", "parameters": [...]}')
    query = parse_query(body["query"], body.get("parameters") or [])
    rows = call.account.query(call.database, call.container, _query_scope(call), query)
    page, continuation = _page(rows, call.header("x-ms-continuation"), call.header("x-ms-max-item-count"))
    headers = {"x-ms-item-count": str(len(page))}
    if continuation is not None:
        headers["x-ms-continuation"] = continuation
    rid = call.account.read_container(call.database, call.container)["_rid"]
    return _json(200, {"_rid": rid, "Documents": page, "_count": len(page)}, headers)


def _page(
    rows: list[Document], continuation: str | None, page_size: str | None
) -> tuple[list[Document], str | None]:
    """One page of a query's rows; the continuation token is the next row's offset (the query is re-run)."""
    try:
        start = int(continuation or 0)
        size = int(page_size or -1)
    except ValueError:
        raise bad_request(f"malformed continuation {continuation!r} or page size {page_size!r}") from None
    end = len(rows) if size <= 0 else start + size
    return rows[start:end], (str(end) if end < len(rows) else None)


_ROUTES: dict[tuple[str, str], Callable[[_Call], Response]] = {
    ("GET", ""): _account_properties,
    ("POST", "dbs"): _create_database,
    ("GET", "dbs/*"): _read_database,
    ("POST", "dbs/*/colls"): _create_container,
    ("GET", "dbs/*/colls/*"): _read_container,
    ("GET", "dbs/*/colls/*/pkranges"): _partition_key_ranges,
    ("POST", "dbs/*/colls/*/docs"): _post_documents,
    ("GET", "dbs/*/colls/*/docs/*"): _read_document,
    ("PUT", "dbs/*/colls/*/docs/*"): _replace_document,
    ("DELETE", "dbs/*/colls/*/docs/*"): _delete_document,
}
"""Requests by method and path shape (``*`` is an id: a name, or a resource id from a ``_self`` link)."""


async def _parse_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None


def create_cosmos_app(
    account: CosmosAccount, key: str, requests: list[RecordedRequest] | None = None
) -> Starlette:
    """The REST API over ``account`` as an ASGI app; requests are appended to ``requests`` when given."""

    async def serve(request: Request) -> Response:
        path = request.scope["path"]
        segments = [segment for segment in path.split("/") if segment]
        if requests is not None:
            requests.append(RecordedRequest(request.method, path, dict(request.headers)))
        try:
            _check_authorization(request, segments, key)
            shape = "/".join("*" if index % 2 else segment for index, segment in enumerate(segments))
            route = _ROUTES.get((request.method, shape))
            if route is None:
                raise bad_request(f"{request.method} {path} is not supported by the local Cosmos DB server")
            response = route(_Call(account, request, segments[1::2], await _parse_body(request)))
        except CosmosError as error:
            response = _json(error.status, {"code": error.code, "message": error.message})
        response.headers.update(
            {
                "x-ms-activity-id": request.headers.get("x-ms-activity-id") or str(uuid.uuid4()),
                "x-ms-request-charge": REQUEST_CHARGE,
                "x-ms-session-token": f"0:-1#{account.lsn}",
            }
        )
        return response

    methods = sorted({method for method, _ in _ROUTES} | {"PATCH"})
    return Starlette(routes=[Route("/{path:path}", serve, methods=methods)])
