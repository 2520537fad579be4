"""A local managed-identity endpoint, as App Service and Azure Functions give every app.

On those hosts ``ManagedIdentityCredential`` finds ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` in the
environment and asks that endpoint (``GET ?api-version=2019-08-01&resource=<scope>&client_id=<id>`` with
the header ``X-IDENTITY-HEADER``) for an Entra ID token. Serving the same protocol on loopback lets a test
run the runtime exactly as deployed, real credential class included, against local stand-ins of the
services (:mod:`agent_runtime.testing.cosmos`)::

    with LocalManagedIdentity() as identity:
        env = {**os.environ, **identity.environment}   # for a runtime process
        ...
        assert identity.requests[0]["resource"] == "https://cosmos.azure.com"

Tokens are opaque strings; the request log lets tests assert which audience and identity were asked for.
"""

from __future__ import annotations

import secrets
import time
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.testing.serve import ServerThread

TOKEN_SECONDS = 3600


class LocalManagedIdentity:
    """The endpoint on a loopback port; ``environment`` is what the host would set for the app."""

    def __init__(self) -> None:
        self.header = secrets.token_urlsafe(16)
        self.requests: list[dict[str, str]] = []
        self._server = ServerThread(Starlette(routes=[Route("/msi/token", self._token)]))

    @property
    def url(self) -> str:
        return f"{self._server.url}/msi/token"

    @property
    def environment(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header}

    async def _token(self, request: Request) -> JSONResponse:
        if request.headers.get("x-identity-header") != self.header:
            return JSONResponse({"error": "unauthorized", "message": "X-IDENTITY-HEADER is wrong"}, 401)
        query = dict(request.query_params)
        if query.get("api-version") != "2019-08-01" or not query.get("resource"):
            return JSONResponse(
                {"error": "bad_request", "message": "api-version and resource are required"}, 400
            )
        self.requests.append(query)
        body: dict[str, Any] = {
            "access_token": f"local-{secrets.token_urlsafe(24)}",
            "expires_on": str(int(time.time()) + TOKEN_SECONDS),
            "resource": query["resource"],
            "token_type": "Bearer",
        }
        if "client_id" in query:
            body["client_id"] = query["client_id"]
        return JSONResponse(body)

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.stop()
