"""The server: the REST app on a loopback port, over TLS with a self-signed certificate by default."""

from __future__ import annotations

import base64
import datetime
import ipaddress
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


def _write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A day-long certificate and key for ``localhost`` and ``127.0.0.1``, as PEM files in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = directory / "cert.pem", directory / "key.pem"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_file, key_file


class _TlsServerThread(ServerThread):
    """A :class:`ServerThread` serving HTTPS: uvicorn loads the certificate when the thread starts."""

    def __init__(self, app: Any, certificate: Path, key: Path, *, host: str, port: int) -> None:
        super().__init__(app, host=host, port=port)
        self._server.config.ssl_certfile = str(certificate)
        self._server.config.ssl_keyfile = str(key)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


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
            certificate, private_key = _write_self_signed_certificate(Path(self._certificates.name))
            self._server = _TlsServerThread(app, certificate, private_key, host=host, port=port)

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
