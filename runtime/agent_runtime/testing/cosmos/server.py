"""The server: the REST app on a loopback port, over TLS with a self-signed certificate by default."""

from __future__ import annotations

import base64
import secrets
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from agent_runtime.testing.cosmos.account import CosmosAccount, partition_key_definition
from agent_runtime.testing.cosmos.base import Clock, CosmosError, Document
from agent_runtime.testing.cosmos.rest import RecordedRequest, create_cosmos_app
from agent_runtime.testing.serve import ServerThread
from agent_runtime.testing.tls import TlsServerThread, write_self_signed_certificate

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken


class StaticTokenCredential:
    """An async Entra ID credential that always returns the same bearer token; for clients of the local
    server, which accepts any non-empty token (the SDK asks for a token scoped to the account URL)."""

    def __init__(self, token: str = "local-cosmos-token", lifetime_seconds: int = 3600) -> None:
        self.token = token
        self.lifetime_seconds = lifetime_seconds

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken  # the SDK's dependency: imported by its users only

        return AccessToken(self.token, int(time.time()) + self.lifetime_seconds)

    async def close(self) -> None:
        """Nothing to release; present because the SDK's credential protocol includes it."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class LocalCosmosServer:
    """``with LocalCosmosServer() as cosmos: CosmosClient(cosmos.url, credential=cosmos.key)``.

    ``tls``: HTTPS with a throw-away certificate (the default; needed for Entra ID credentials), or plain
    HTTP. ``key``: the account key that signatures are checked against (a random one by default).
    ``clock``: the time in epoch seconds, for ``_ts`` and TTL; pass a settable one to expire items without
    sleeping. Every request is appended to :attr:`requests`.
    """

    def __init__(
        self,
        *,
        tls: bool = True,
        key: str | None = None,
        clock: Clock = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.key = key or base64.b64encode(secrets.token_bytes(64)).decode()
        self.account = CosmosAccount(clock)
        self.requests: list[RecordedRequest] = []
        app = create_cosmos_app(self.account, self.key, self.requests)
        self._certificates = tempfile.TemporaryDirectory(prefix="local-cosmos-") if tls else None
        if self._certificates is None:
            self._server: ServerThread = ServerThread(app, host=host, port=port)
        else:
            certificate, private_key = write_self_signed_certificate(Path(self._certificates.name))
            self._server = TlsServerThread(app, certificate, private_key, host=host, port=port)

    @property
    def url(self) -> str:
        """The account endpoint to give ``CosmosClient``, e.g. ``https://127.0.0.1:54321/``."""
        return self._server.url + "/"

    def create_database(self, id_: str) -> Document:
        """Create a database as infrastructure would (409 CosmosError if it exists); returns its properties."""
        return self.account.create_database(id_)

    def create_container(
        self,
        database: str,
        id_: str,
        partition_key: str | Sequence[str],
        *,
        default_ttl: int | None = None,
        **properties: Any,
    ) -> Document:
        """Create a container (and its database, if missing) as infrastructure would; a list of paths is a
        hierarchical key. ``properties`` are further REST properties, e.g. ``indexingPolicy``."""
        try:
            self.account.read_database(database)
        except CosmosError as error:
            if error.status != 404:
                raise
            self.account.create_database(database)
        body = {"id": id_, "partitionKey": partition_key_definition(partition_key), **properties}
        if default_ttl is not None:
            body["defaultTtl"] = default_ttl
        return self.account.create_container(database, body)

    def documents(self, database: str, container: str) -> list[Document]:
        """The container's unexpired items, for assertions."""
        return self.account.documents(database, container)

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._certificates is not None:
            self._certificates.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
