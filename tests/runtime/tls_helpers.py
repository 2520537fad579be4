"""TLS for tests: a CA of the test's own and a server certificate it signed, as files and contexts."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def tls_files(directory: Path, host: str) -> tuple[Path, ssl.SSLContext]:
    """A CA (its certificate written to ``directory``, for ``SSL_CERT_FILE``) and a server context whose
    certificate it signed for ``host``."""
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(hours=1))

    def certificate(subject: str, key: Any, issuer: str, signer: Any, extensions: list[Any]) -> Any:
        builder = x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]),
            issuer_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]),
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            not_valid_before=validity[0],
            not_valid_after=validity[1],
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(
        "test CA", ca_key, "test CA", ca_key, [(x509.BasicConstraints(ca=True, path_length=0), True)]
    )
    server = certificate(
        host, server_key, "test CA", ca_key, [(x509.SubjectAlternativeName([x509.DNSName(host)]), False)]
    )
    ca_file, chain, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key_file)
    return ca_file, context
