"""HTTPS for the local servers: a throw-away self-signed certificate and a loopback thread that serves TLS.

azure-core sends bearer tokens over TLS only, so the local Azure services (Cosmos DB, AI Search) serve
HTTPS with a certificate made at start-up for ``localhost`` and ``127.0.0.1``.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from agent_runtime.testing.serve import ServerThread


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
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


class TlsServerThread(ServerThread):
    """A :class:`ServerThread` serving HTTPS: uvicorn loads the certificate when the thread starts."""

    def __init__(self, app: Any, certificate: Path, key: Path, *, host: str, port: int) -> None:
        super().__init__(app, host=host, port=port)
        self._server.config.ssl_certfile = str(certificate)
        self._server.config.ssl_keyfile = str(key)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"
