"""JWT verification against an issuer's JWKS, served by an httpx mock transport: which key verifies which
token, which claims name the caller, and how the key set is fetched when the issuer fails, hangs, trickles
or floods."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agent_runtime import auth
from agent_runtime.auth import JwksCache, JwtAuthenticator
from agent_runtime.caller import DEFAULT_TENANT, UNKNOWN_APPLICATION, Caller
from agent_runtime.errors import Unauthorized, Unavailable

ISSUER = "https://login.example.test/tenant"
AUDIENCE = "api://agentstage"
KID = "key-1"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_P256 = ec.generate_private_key(ec.SECP256R1())
EC_P384 = ec.generate_private_key(ec.SECP384R1())
ED25519 = ed25519.Ed25519PrivateKey.generate()
SECRET = b"a shared secret of thirty-two b."

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def jwk(key: Any, **members: str) -> dict[str, Any]:
    """The public JWK of ``key`` under :data:`KID`, with ``members`` added (an ``alg``)."""
    if isinstance(key, bytes):
        public = jwt.algorithms.HMACAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, rsa.RSAPrivateKey):
        public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        public = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return public | {"kid": KID, "use": "sig"} | members


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "iat": now, "exp": now + 300} | overrides
    return {name: value for name, value in body.items() if value is not None}


def token(key: Any = RSA_KEY, alg: str = "RS256", kid: str = KID, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers={"kid": kid})


def forged(header: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A token PyJWT would refuse to sign: ``sign`` makes the signature of its header and claims."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims()).encode())}"
    return f"{signed}.{part(sign(signed.encode()))}"


def serving(*keys: dict[str, Any]) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": list(keys)})

    return handler


class Issuer:
    """A JWKS endpoint whose answer a test changes, counting its fetches."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.fetches = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        return await self.handler(request)


def authenticator(
    handler: Handler, *, algorithms: list[str] | None = None, ttl: float = 300.0
) -> JwtAuthenticator:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return JwtAuthenticator(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys=JwksCache("https://login.example.test/keys", http, ttl),
        algorithms=algorithms or ["RS256"],
        roles_claim="roles",
        tenant_claim="tid",
    )


async def outcome(authenticator: JwtAuthenticator, bearer: str) -> str:
    """``accepted``, or ``refused`` for :class:`Unauthorized` (any other exception fails the test)."""
    try:
        await authenticator.authenticate(bearer=bearer, api_key=None)
    except Unauthorized:
        return "refused"
    return "accepted"


# -- which key verifies which token ------------------------------------------------------------------------

KEYS = {
    "RSA, alg RS256": (jwk(RSA_KEY, alg="RS256"), "RS256"),
    "RSA, no alg": (jwk(RSA_KEY), "RS256"),
    "RSA, alg PS256": (jwk(RSA_KEY, alg="PS256"), "PS256"),
    "EC P-256": (jwk(EC_P256), "ES256"),
    "EC P-384": (jwk(EC_P384), "ES384"),
    "Ed25519": (jwk(ED25519), "EdDSA"),
    "oct": (jwk(SECRET), "HS256"),
}
"""Each key type the JWKS may publish, and the one algorithm it verifies: its ``alg``, else its type's."""

RSA_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def tokens() -> dict[str, str]:
    """Tokens of every algorithm, each signed by the key of its family the JWKS may publish (so a token whose
    algorithm is the key's is validly signed by it) or forged, all under the one ``kid``; made when a test
    runs, since they expire."""
    return {
        "RS256": token(RSA_KEY, "RS256"),
        "PS256": token(RSA_KEY, "PS256"),
        "ES256": token(EC_P256, "ES256"),
        "ES384": token(EC_P384, "ES384"),
        "EdDSA": token(ED25519, "EdDSA"),
        "HS256": token(SECRET, "HS256"),
        "ES256 unsigned": forged({"alg": "ES256", "kid": KID}, lambda _: b"\0" * 64),
        "HS256 keyed with the RSA key's PEM": forged(
            {"alg": "HS256", "kid": KID}, lambda signed: hmac.digest(RSA_PEM, signed, hashlib.sha256)
        ),
    }


@pytest.mark.parametrize(
    "algorithms",
    [
        ["RS256"],
        ["RS256", "ES256"],
        ["RS256", "HS256"],
        ["RS256", "PS256"],
        ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"],
    ],
    ids=",".join,
)
async def test_a_key_verifies_only_its_own_algorithm(algorithms: list[str]) -> None:
    """Every allowed algorithms setting, key type and token algorithm: a token is accepted only when its
    algorithm is allowed and is its key's, and refused (401) otherwise, never failing another way."""
    found, expected = {}, {}
    for key_name, (key, key_algorithm) in KEYS.items():
        verifier = authenticator(serving(key), algorithms=algorithms)
        for token_name, bearer in tokens().items():
            found[key_name, token_name] = await outcome(verifier, bearer)
            valid = token_name == key_algorithm and token_name in algorithms
            expected[key_name, token_name] = "accepted" if valid else "refused"
    assert found == expected


async def test_a_token_of_another_key_family_names_the_mismatch() -> None:
    verifier = authenticator(serving(jwk(RSA_KEY, alg="RS256")), algorithms=["RS256", "ES256"])
    with pytest.raises(
        Unauthorized, match="Token algorithm 'ES256' does not match the key's algorithm 'RS256'"
    ):
        await verifier.authenticate(bearer=tokens()["ES256 unsigned"], api_key=None)


async def test_every_key_of_a_kid_is_tried() -> None:
    """Two keys under one kid (an issuer overlapping a rotation): either one's tokens pass; the first's
    expired token is refused as expired, not as signed by the second."""
    second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = authenticator(serving(jwk(RSA_KEY, alg="RS256"), jwk(second, alg="RS256")))
    assert (await verifier.authenticate(bearer=token(RSA_KEY), api_key=None)).id == "carol"
    assert (await verifier.authenticate(bearer=token(second), api_key=None)).id == "carol"
    with pytest.raises(Unauthorized, match="Signature has expired"):
        await verifier.authenticate(bearer=token(RSA_KEY, exp=int(time.time()) - 600), api_key=None)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthorized, match="Signature verification failed"):
        await verifier.authenticate(bearer=token(stranger), api_key=None)


@pytest.mark.parametrize(("claim", "direction"), [("exp", -1), ("nbf", 1), ("iat", 1)])
async def test_clocks_may_differ_by_the_leeway(claim: str, direction: int) -> None:
    """A token that expired, or becomes valid, seconds ago or ahead by this host's clock passes; one
    beyond the leeway does not."""
    now = int(time.time())
    verifier = authenticator(serving(jwk(RSA_KEY, alg="RS256")))
    assert await outcome(verifier, token(**{claim: now + direction * 10})) == "accepted"
    beyond = now + direction * (auth.JWT_LEEWAY_SECONDS + 30)
    assert await outcome(verifier, token(**{claim: beyond})) == "refused"


# -- the tenant claim -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [({}, DEFAULT_TENANT), ({"tid": "t-a"}, "t-a")],
    ids=["absent", "a tenant id"],
)
async def test_the_tenant_is_the_claims_or_the_default(tenant: dict[str, str], expected: str) -> None:
    caller = await authenticator(serving(jwk(RSA_KEY, alg="RS256"))).authenticate(
        bearer=token(**tenant), api_key=None
    )
    assert caller == Caller("carol", frozenset(), expected, UNKNOWN_APPLICATION)


@pytest.mark.parametrize("tid", [["t-a", "t-b"], 42, "", 0, False, {"id": "t-a"}])
async def test_a_tenant_claim_that_is_no_tenant_id_is_401(tid: Any) -> None:
    verifier = authenticator(serving(jwk(RSA_KEY, alg="RS256")))
    with pytest.raises(
        Unauthorized, match=re.escape(f"the token's 'tid' claim must be a non-empty string, got {tid!r}")
    ):
        await verifier.authenticate(bearer=token(tid=tid), api_key=None)


# -- fetching the key set ------------------------------------------------------------------------------------


async def failing(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500)


async def test_a_failed_fetch_is_not_retried_before_the_minimum_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "JWKS_MIN_REFRESH_SECONDS", 0.2)
    issuer = Issuer(failing)
    verifier = authenticator(issuer)
    for _ in range(50):
        with pytest.raises(Unavailable, match="HTTPStatusError"):
            await verifier.authenticate(bearer=token(kid=str(uuid.uuid4())), api_key=None)
    assert issuer.fetches == 1
    await asyncio.sleep(0.25)
    with pytest.raises(Unavailable):
        await verifier.authenticate(bearer=token(), api_key=None)
    assert issuer.fetches == 2, "retried once the interval is over"


async def test_the_last_good_keys_serve_while_the_issuer_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "JWKS_MIN_REFRESH_SECONDS", 0.2)
    issuer = Issuer(serving(jwk(RSA_KEY, alg="RS256")))
    verifier = authenticator(issuer, ttl=0.05)
    assert await outcome(verifier, token()) == "accepted"
    issuer.handler = failing
    await asyncio.sleep(0.1)  # past the keys' ttl
    for _ in range(3):
        assert await outcome(verifier, token()) == "accepted"
    assert issuer.fetches == 2, "one failed refresh, then backing off"
    with pytest.raises(Unavailable, match="HTTPStatusError"):  # it may be the issuer's new key: not a 401
        await verifier.authenticate(bearer=token(kid="key-2"), api_key=None)


async def test_the_last_good_keys_are_dropped_once_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the issuer rotated out must not stay trusted for as long as the issuer can be kept unreachable."""
    monkeypatch.setattr(auth, "JWKS_MIN_REFRESH_SECONDS", 0.05)
    monkeypatch.setattr(auth, "JWKS_STALE_SECONDS", 0.3)
    issuer = Issuer(serving(jwk(RSA_KEY, alg="RS256")))
    verifier = authenticator(issuer, ttl=0.05)
    assert await outcome(verifier, token()) == "accepted"
    issuer.handler = failing
    await asyncio.sleep(0.1)
    assert await outcome(verifier, token()) == "accepted", "within the staleness allowed"
    await asyncio.sleep(0.35)
    for _ in range(2):  # the refresh that finds the keys too old, then the back-off's answer
        with pytest.raises(Unavailable, match="HTTPStatusError"):
            await verifier.authenticate(bearer=token(), api_key=None)
        await asyncio.sleep(0.06)
    issuer.handler = serving(jwk(RSA_KEY, alg="RS256"))
    await asyncio.sleep(0.06)
    assert await outcome(verifier, token()) == "accepted", "back in service with the next good fetch"


async def test_one_fetch_answers_every_request_waiting_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issuer hangs: every waiting request has the one fetch's failure when its deadline passes."""
    monkeypatch.setattr(auth, "JWKS_FETCH_SECONDS", 0.3)

    async def hanging(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        return httpx.Response(504)

    issuer = Issuer(hanging)
    verifier = authenticator(issuer)

    async def refused() -> float:
        with pytest.raises(Unavailable, match="TimeoutError"):
            await verifier.authenticate(bearer=token(), api_key=None)
        return time.monotonic() - started

    started = time.monotonic()
    finished = await asyncio.wait_for(asyncio.gather(*(refused() for _ in range(10))), 5)
    assert max(finished) < 1.0
    assert issuer.fetches == 1


async def test_a_trickling_key_set_is_given_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "JWKS_FETCH_SECONDS", 0.3)
    body = json.dumps({"keys": [jwk(RSA_KEY, alg="RS256")]}).encode()

    async def trickle() -> AsyncIterator[bytes]:
        for byte in body:
            await asyncio.sleep(0.05)
            yield bytes([byte])

    async def trickling(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    with pytest.raises(Unavailable, match="TimeoutError"):
        await asyncio.wait_for(authenticator(trickling).authenticate(bearer=token(), api_key=None), 5)


async def test_a_key_set_is_read_up_to_its_size_limit() -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"junk": "'
        while True:
            sent += 65536
            yield b"x" * 65536
            await asyncio.sleep(0)  # an issuer's stream: lets a deadline cancel the read

    async def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    with pytest.raises(Unavailable, match=f"larger than {auth.JWKS_MAX_BYTES} bytes"):
        await asyncio.wait_for(authenticator(huge).authenticate(bearer=token(), api_key=None), 5)
    assert sent <= auth.JWKS_MAX_BYTES + 65536


@pytest.mark.parametrize(
    "body",
    [b"<html>not json</html>", b"[1, 2, 3]", b'"keys"', b"null", b"[" * 100_000, b'{"keys": [1, "x", null]}'],
    ids=["html", "list", "string", "null", "nested too deeply", "no key objects"],
)
async def test_a_key_set_that_is_no_jwks_object_is_unavailable(body: bytes) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    with pytest.raises(Unavailable, match="signing keys"):
        await authenticator(answer).authenticate(bearer=token(), api_key=None)
