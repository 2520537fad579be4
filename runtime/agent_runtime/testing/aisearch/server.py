"""The REST API over a local search service: routes, authentication and roles, recorded requests, and
:class:`AISearchServer`, which serves it on a loopback HTTPS port."""

from __future__ import annotations

import json
import re
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agent_runtime.testing.aisearch.index import SearchIndex
from agent_runtime.testing.aisearch.schema import Document, SearchError, check_index, check_update, invalid
from agent_runtime.testing.tls import TlsServerThread, write_self_signed_certificate

READER = "Search Index Data Reader"
CONTRIBUTOR = "Search Index Data Contributor"
SERVICE_CONTRIBUTOR = "Search Service Contributor"
ROLES = frozenset({READER, CONTRIBUTOR, SERVICE_CONTRIBUTOR})
_API_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2})(-preview)?")
_PATH = re.compile(r"/indexes(?:\('(?P<quoted>(?:[^']|'')*)'\)|/(?P<plain>[^/]+))(?P<rest>/.*)?")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server saw it: header names lower-case, the JSON body parsed (``None`` if empty)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class LocalSearchService:
    """The indexes of one search service, guarded by a lock (served on the server's thread, read by tests)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.indexes: dict[str, SearchIndex] = {}

    def index(self, name: str) -> SearchIndex:
        found = self.indexes.get(name)
        if found is None:
            raise SearchError(
                404,
                "ResourceNotFound",
                f"No index with the name '{name}' was found in the service '{self.name}'.",
            )
        return found

    def put_index(self, name: str, body: Any) -> tuple[int, Document]:
        definition = check_index(body, name)
        existing = self.indexes.get(name)
        if existing is not None:
            check_update(existing.definition, definition)
            existing.definition, existing.etag = definition, f'"{uuid.uuid4().hex}"'
            return 200, self.representation(existing)
        self.indexes[name] = SearchIndex(definition, f'"{uuid.uuid4().hex}"')
        return 201, self.representation(self.indexes[name])

    def representation(self, index: SearchIndex) -> Document:
        return {"@odata.etag": index.etag, **index.definition}


@dataclass
class _Access:
    """Who may do what: roles per bearer token (a token not listed holds every role); injected failures."""

    roles: dict[str, frozenset[str]]
    fail_next: list[int]

    def check(self, token: str, needed: set[str], action: str) -> None:
        if not self.roles.get(token, ROLES) & needed:
            raise SearchError(
                403,
                "Forbidden",
                f"Authorization failed: the caller is not authorized to perform '{action}' "
                f"(it needs one of {sorted(needed)}).",
            )


_READ_DOCUMENTS, _WRITE_DOCUMENTS = {READER, CONTRIBUTOR}, {CONTRIBUTOR}


def _authenticate(request: Request) -> str:
    """The bearer token; an API key is refused (403) because the service has local authentication off."""
    if "api-key" in request.headers:
        raise SearchError(403, "Forbidden", "Key-based authentication is disabled for this search service.")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SearchError(
            401, "Unauthorized", "Authentication needs an Entra ID bearer token (Authorization)."
        )
    version = _API_VERSION.fullmatch(request.query_params.get("api-version", ""))
    if version is None or version.group(1) < "2023-11-01":
        raise invalid("The api-version query parameter (?api-version=) is required: 2023-11-01 or later.")
    return token.strip()


def _route(service: LocalSearchService, access: _Access, request: Request, token: str, body: Any) -> Response:
    found = _PATH.fullmatch(request.url.path)
    if found is None:
        raise invalid(f"{request.method} {request.url.path} is not supported by the local AI Search server.")
    name = (
        found.group("quoted").replace("''", "'")
        if found.group("quoted") is not None
        else found.group("plain")
    )
    rest, method = found.group("rest") or "", request.method
    with service.lock:
        if (method, rest) == ("GET", ""):
            access.check(token, {SERVICE_CONTRIBUTOR}, "Microsoft.Search/searchServices/indexes/read")
            return JSONResponse(service.representation(service.index(name)))
        if (method, rest) == ("PUT", ""):
            access.check(token, {SERVICE_CONTRIBUTOR}, "Microsoft.Search/searchServices/indexes/write")
            status, definition = service.put_index(name, body)
            return JSONResponse(definition, status)
        if (method, rest) == ("POST", "/docs/search.index"):
            access.check(token, _WRITE_DOCUMENTS, "Microsoft.Search/searchServices/indexes/documents/write")
            status, results = service.index(name).write(body)
            return JSONResponse(results, status)
        if (method, rest) == ("POST", "/docs/search.post.search"):
            access.check(token, _READ_DOCUMENTS, "Microsoft.Search/searchServices/indexes/documents/read")
            next_link = f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{request.url.query}"
            return JSONResponse(service.index(name).search(body, next_link))
        if (method, rest) == ("GET", "/docs/$count"):
            access.check(token, _READ_DOCUMENTS, "Microsoft.Search/searchServices/indexes/documents/read")
            return PlainTextResponse(str(len(service.index(name).stored)))
    raise invalid(f"{method} {request.url.path} is not supported by the local AI Search server.")


def create_search_app(
    service: LocalSearchService,
    requests: list[RecordedRequest] | None = None,
    roles: Mapping[str, Iterable[str]] | None = None,
    fail_next: list[int] | None = None,
) -> Starlette:
    """The REST API over ``service`` as an ASGI app; see the package docstring for what it serves."""
    access = _Access(
        {t: frozenset(r) for t, r in (roles or {}).items()}, fail_next if fail_next is not None else []
    )

    async def serve(request: Request) -> Response:
        raw = await request.body()
        try:
            body, failure = (json.loads(raw) if raw else None), None
        except ValueError:
            body, failure = raw.decode(errors="replace"), invalid("The request body is not valid JSON.")
        if requests is not None:
            query, headers = dict(request.query_params), dict(request.headers)
            requests.append(RecordedRequest(request.method, request.url.path, query, headers, body))
        try:
            token = _authenticate(request)
            if failure is not None:
                raise failure
            if access.fail_next:
                status = access.fail_next.pop(0)
                raise SearchError(status, HTTPStatus(status).phrase.replace(" ", ""), "Injected failure.")
            return _route(service, access, request, token, body)
        except SearchError as error:
            return JSONResponse({"error": {"code": error.code, "message": error.message}}, error.status)

    return Starlette(routes=[Route("/{path:path}", serve, methods=["GET", "PUT", "POST", "DELETE", "PATCH"])])


class AISearchServer:
    """``with AISearchServer() as search:`` a local search service on a loopback HTTPS port.

    Give the SDK ``connection_verify=search.certificate`` (the throw-away certificate) and any token
    credential. ``roles``: the roles each bearer token holds, to check what an identity with, say, only
    *Search Index Data Reader* may do (a token not listed holds every role). ``fail_next``: statuses the
    next requests are answered with, one each (429, 503, ...). Every request is appended to ``requests``.
    """

    def __init__(
        self,
        *,
        service_name: str = "local",
        roles: Mapping[str, Iterable[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.service = LocalSearchService(service_name)
        self.requests: list[RecordedRequest] = []
        self.fail_next: list[int] = []
        app = create_search_app(self.service, self.requests, roles, self.fail_next)
        self._certificates = tempfile.TemporaryDirectory(prefix="local-search-")
        certificate, key = write_self_signed_certificate(Path(self._certificates.name))
        self.certificate = str(certificate)
        self._server = TlsServerThread(app, certificate, key, host=host, port=port)

    @property
    def url(self) -> str:
        """The service endpoint for the SDK, e.g. ``https://127.0.0.1:54321``."""
        return self._server.url

    def documents(self, index: str) -> list[Document]:
        """The index's documents (vectors included), in key order, for assertions."""
        with self.service.lock:
            found = self.service.index(index)
            return [found.stored[key].document for key in sorted(found.stored)]

    def definition(self, index: str) -> Document | None:
        """The stored definition of ``index`` (defaults filled in), or ``None`` when there is none."""
        with self.service.lock:
            found = self.service.indexes.get(index)
            return None if found is None else found.definition

    def searches(self) -> Iterator[Document]:
        """The bodies of the search requests received so far, oldest first."""
        return (r.body for r in self.requests if r.path.endswith("/docs/search.post.search"))

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._certificates.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
