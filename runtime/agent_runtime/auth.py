"""Caller authentication: API keys or JWT bearer tokens, mapped to a :class:`Caller` with roles.

The mode is a setting (``AGENTSTAGE_AUTH_MODE``). API keys are kept only as SHA-256 digests in memory, so
a lookup never compares secrets byte by byte and a key never appears in a repr or a log. JWTs are verified
against the issuer's JWKS, fetched asynchronously and cached; an unknown ``kid`` triggers one refresh, so
key rotation works without a restart. Each key verifies only the algorithm it is published for (its JWK's
``alg``, else its type's: RS256 for RSA, ES256/384/512 by curve, EdDSA), so a token naming another allowed
algorithm can never have a key read as a key of another family.

Every caller also has an application: the client that obtained its credentials, which application budgets
count against (the runtime's counterpart of the Azure gateway's token limit per ``azp``/``appid``, for
stages whose gateway has no such policy, as on AWS). A JWT names it in the first of
:data:`APPLICATION_CLAIMS` it carries; a token with none is :data:`~agent_runtime.caller.UNKNOWN_APPLICATION`,
and all such tokens share its quota. An API key is an application of its own: its entry's
``application``, else its ``caller`` in its tenant (``alice@t-b``; the caller id alone in the default
tenant, and the single ``AGENTSTAGE_API_KEY``'s application is its caller id), so keys share a quota only
where the operator names one application for them. No credential may name the runtime's own tenant
(:data:`~agent_runtime.caller.SYSTEM_TENANT`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, Protocol

import httpx
import jwt

from agent_runtime.caller import DEFAULT_TENANT, UNKNOWN_APPLICATION, Caller, tenant_problem
from agent_runtime.errors import ConfigurationError, Unauthorized, Unavailable
from agent_runtime.memory.base import identity_problem
from agent_runtime.settings import GatewayAuthorizerSettings, Settings

API_KEY_CALLER = "api-key"
"""Caller id of the single ``AGENTSTAGE_API_KEY``."""

APPLICATION_CLAIMS = ("azp", "client_id", "appid")
"""JWT claims naming the client application a token was issued to, in the order they are looked for:
``azp`` (OpenID Connect; Entra ID v2.0 tokens), ``client_id`` (Amazon Cognito access tokens), ``appid``
(Entra ID v1.0 tokens). They are read from the verified token, so no caller can spend another application's
quota by sending a header."""

JWKS_MIN_REFRESH_SECONDS = 10.0
"""Unknown ``kid`` values refresh the key set at most this often, and a failed fetch is retried no sooner, so
neither forged tokens nor an issuer outage make requests flood the issuer."""

JWKS_STALE_SECONDS = 6 * 3600.0
"""How long past their ttl the last good keys stay in service while every fetch fails. An issuer outage of
hours leaves the API up; a longer one takes it down (503), because an issuer rotates a compromised key out of
its key set and a host that cannot fetch the set would otherwise accept that key for ever - as long as
whoever holds it can keep the host from reaching the issuer."""

JWKS_FETCH_SECONDS = 5.0
"""The whole JWKS fetch, connecting and reading the last byte included: httpx's own timeouts bound each
read, so a body trickling in a byte at a time would hold every request waiting on the keys."""

JWKS_MAX_BYTES = 1024 * 1024
"""The largest JWKS read: a real one holds a few keys in a few KB, and the body is held in memory."""

JWT_LEEWAY_SECONDS = 30
"""Clock skew tolerated between the issuer and this host when ``exp``, ``nbf`` and ``iat`` are checked, so a
token is not refused in the seconds a host's clock runs ahead of the issuer's."""


class Authenticator(Protocol):
    async def authenticate(self, *, bearer: str | None, api_key: str | None) -> Caller:
        """The caller the credentials prove, or :class:`Unauthorized`."""


class Anonymous:
    """``auth_mode=none``: everyone is the same caller without roles (tests and local experiments only)."""

    caller = Caller("anonymous")

    async def authenticate(self, *, bearer: str | None, api_key: str | None) -> Caller:
        return self.caller


class ApiKeyAuthenticator:
    def __init__(self, callers: dict[bytes, Caller]) -> None:
        self._callers = callers

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeyAuthenticator:
        callers: dict[bytes, Caller] = {}
        if settings.api_key is not None:
            callers[_digest(settings.api_key.get_secret_value())] = Caller(
                API_KEY_CALLER, frozenset(settings.api_key_roles), application=API_KEY_CALLER
            )
        if settings.api_keys is not None:
            callers.update(_parse_api_keys(settings.api_keys.get_secret_value()))
        return cls(callers)

    async def authenticate(self, *, bearer: str | None, api_key: str | None) -> Caller:
        key = api_key or bearer
        if not key:
            raise Unauthorized("send an API key in 'Authorization: Bearer <key>' or the 'api-key' header")
        caller = self._callers.get(_digest(key))
        if caller is None:
            raise Unauthorized("the API key is not valid")
        return caller


class JwksCache:
    """The issuer's signing keys by ``kid``, refreshed after ``ttl`` seconds or on an unknown ``kid``.

    One fetch at a time: its outcome answers every request waiting on it. A failed fetch leaves the last
    good keys in service (for :data:`JWKS_STALE_SECONDS` past their ttl at most) and is retried no sooner
    than :data:`JWKS_MIN_REFRESH_SECONDS`; until then a ``kid`` they lack is answered with that failure
    (:class:`Unavailable`), as the token may well be valid.
    """

    def __init__(self, url: str, http: httpx.AsyncClient, ttl: float) -> None:
        self._url = url
        self._http = http
        self._ttl = ttl
        self._keys: dict[str, list[jwt.PyJWK]] = {}
        self._expires_at = float("-inf")  # when the keys are fetched again, even for a known kid
        self._fetched_at = float("-inf")  # when the keys in service were fetched
        self._attempted_at = float("-inf")
        self._failure: str | None = None  # why the last fetch failed; None once one succeeds
        self._fetch: asyncio.Task[None] | None = None

    async def keys(self, kid: str) -> list[jwt.PyJWK]:
        """The keys published under ``kid``: one, or several while the issuer overlaps a rotation."""
        now = asyncio.get_running_loop().time()
        expired, unknown = now >= self._expires_at, kid not in self._keys
        if self._fetch is None and (
            expired or (unknown and now - self._attempted_at >= JWKS_MIN_REFRESH_SECONDS)
        ):
            self._fetch = asyncio.create_task(self._refresh())
        if self._fetch is not None and (expired or unknown):
            # Shielded: a request given up on (its client gone) must not cancel the fetch others wait on.
            await asyncio.shield(self._fetch)
        if kid in self._keys:
            return self._keys[kid]
        if self._failure is not None:
            raise Unavailable(self._failure)
        raise Unauthorized("the token's signing key is unknown")

    async def _refresh(self) -> None:
        """Fetch the key set and record the outcome for every waiting request (it never raises)."""
        loop = asyncio.get_running_loop()
        self._attempted_at = loop.time()
        try:
            key_set = await self._key_set()
        except Unavailable as error:
            self._failure = error.message
            if loop.time() - self._fetched_at > self._ttl + JWKS_STALE_SECONDS:
                self._keys = {}  # too old to trust: every token is refused with the failure until a fetch works
            # Back off: no retry for a while, and the last good keys stay in service, even past their ttl.
            self._expires_at = max(self._expires_at, loop.time() + JWKS_MIN_REFRESH_SECONDS)
        else:
            self._keys = {}
            for key in key_set.keys:
                if key.key_id:
                    self._keys.setdefault(key.key_id, []).append(key)
            self._failure = None
            self._fetched_at = self._attempted_at
            self._expires_at = loop.time() + self._ttl
        finally:
            self._fetch = None

    async def _key_set(self) -> jwt.PyJWKSet:
        try:
            async with asyncio.timeout(JWKS_FETCH_SECONDS):
                body = await self._body()
            document = json.loads(body)
            if not isinstance(document, dict):
                raise Unavailable("the token issuer's signing keys are not a JSON object")
            return jwt.PyJWKSet.from_dict(document)
        # RecursionError: JSON nested too deeply for the parser.
        except (httpx.HTTPError, TimeoutError, ValueError, RecursionError, jwt.PyJWTError) as error:
            raise Unavailable(
                f"cannot fetch the token issuer's signing keys: {type(error).__name__}"
            ) from error

    async def _body(self) -> bytes:
        """The JWKS document, read up to :data:`JWKS_MAX_BYTES` and no further."""
        async with self._http.stream("GET", self._url) as response:
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise Unavailable(
                        f"the token issuer's signing keys are larger than {JWKS_MAX_BYTES} bytes"
                    )
            return bytes(body)


class JwtAuthenticator:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: JwksCache,
        algorithms: list[str],
        roles_claim: str,
        tenant_claim: str,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._algorithms = algorithms
        self._roles_claim = roles_claim
        self._tenant_claim = tenant_claim

    @classmethod
    def from_settings(
        cls, settings: Settings | GatewayAuthorizerSettings, http: httpx.AsyncClient
    ) -> JwtAuthenticator:
        """The JWT checks ``settings`` name (the runtime's, or the gateway authorizer's same fields), fetching
        the issuer's keys with ``http``."""
        # Both settings classes refuse to be built for JWTs without these.
        assert settings.jwt_issuer and settings.jwt_audience and settings.jwt_jwks_url
        return cls(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            keys=JwksCache(settings.jwt_jwks_url, http, settings.jwks_cache_seconds),
            algorithms=settings.jwt_algorithms,
            roles_claim=settings.jwt_roles_claim,
            tenant_claim=settings.jwt_tenant_claim,
        )

    async def authenticate(self, *, bearer: str | None, api_key: str | None) -> Caller:
        if not bearer:
            raise Unauthorized("send a JWT in 'Authorization: Bearer <token>'")
        try:
            kid = jwt.get_unverified_header(bearer).get("kid")
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the token is not valid: {error}") from error
        if not isinstance(kid, str):
            raise Unauthorized("the token has no 'kid' header")
        claims = self._claims(bearer, await self._keys.keys(kid))
        # An absent claim is the default tenant; a present one must name a tenant (not 0, "" or a list).
        subject, tenant = claims["sub"], claims.get(self._tenant_claim, DEFAULT_TENANT)
        for claim, problem in (
            ("sub", identity_problem(subject)),
            (self._tenant_claim, tenant_problem(tenant)),
        ):
            if problem:
                raise Unauthorized(f"the token's '{claim}' claim {problem}")
        return Caller(subject, _roles(claims.get(self._roles_claim)), tenant, _application(claims))

    def _claims(self, token: str, keys: list[jwt.PyJWK]) -> dict[str, Any]:
        """The token's claims, verified with the first of its ``kid``'s keys that signed it."""
        try:
            for key in keys[:-1]:
                try:
                    return self._decode(token, key)
                except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
                    continue  # signed by another key of the kid, or by none: the last key's error says
            return self._decode(token, keys[-1])
        # TypeError and ValueError: PyJWT's key handling raises them for key and token combinations it does
        # not anticipate (it did for a token naming another key family's algorithm); a refusal all the same.
        except (jwt.PyJWTError, TypeError, ValueError) as error:
            raise Unauthorized(f"the token is not valid: {error}") from error

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        # The PyJWK itself, not its key: PyJWT then verifies with the key's own algorithm only.
        return jwt.decode(
            token,
            key,
            algorithms=self._algorithms,
            audience=self._audience,
            issuer=self._issuer,
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )


def build_authenticator(settings: Settings, http: httpx.AsyncClient) -> Authenticator:
    if settings.auth_mode == "none":
        return Anonymous()
    if settings.auth_mode == "api_key":
        return ApiKeyAuthenticator.from_settings(settings)
    return JwtAuthenticator.from_settings(settings, http)


def _digest(key: str) -> bytes:
    """What an API key is looked up by (never the key itself). BLAKE2b is Python's own C code; SHA-256 goes
    through OpenSSL 3, which looks the algorithm up on every call: 11.8 -> 4.8 us per authenticated request
    (median, in process, the lookup included)."""
    return hashlib.blake2b(key.encode(), digest_size=32).digest()


def _parse_api_keys(raw: str) -> dict[bytes, Caller]:
    """``{"<key>": {"caller": "id", "roles": [...], "tenant": "id", "application": "id"}}`` (tenant and
    application optional; the application defaults to the caller in its tenant, :func:`_own_application`);
    errors never quote the keys."""
    try:
        entries: Any = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"AGENTSTAGE_API_KEYS is not valid JSON (at position {error.pos})") from None
    if not isinstance(entries, dict):
        raise ConfigurationError("AGENTSTAGE_API_KEYS must be a JSON object mapping keys to callers")
    callers: dict[bytes, Caller] = {}
    for position, (key, entry) in enumerate(entries.items(), start=1):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("caller"), str)
            and isinstance(entry.get("roles", []), list)
            and all(isinstance(role, str) for role in entry.get("roles", []))
            and isinstance(entry.get("tenant", DEFAULT_TENANT), str)
            and isinstance(entry.get("application", entry.get("caller")), str)
        ):
            raise ConfigurationError(
                f"AGENTSTAGE_API_KEYS entry #{position} must be "
                '{"caller": "<id>", "roles": ["<role>", ...], "tenant": "<id>", "application": "<id>"}'
            )
        tenant = entry.get("tenant", DEFAULT_TENANT)
        identity = {
            "caller": entry["caller"],
            "tenant": tenant,
            "application": entry.get("application", _own_application(entry["caller"], tenant)),
        }
        for part, value in identity.items():
            if problem := (tenant_problem if part == "tenant" else identity_problem)(value):
                raise ConfigurationError(f"AGENTSTAGE_API_KEYS entry #{position}: '{part}' {problem}")
        callers[_digest(key)] = Caller(
            identity["caller"], frozenset(entry.get("roles", [])), identity["tenant"], identity["application"]
        )
    return callers


def _own_application(caller: str, tenant: str) -> str:
    """The application of an API key whose entry names none: its caller, in its tenant (``alice@t-b``; the
    caller id alone in the default tenant), so same-named callers of two tenants never share a quota."""
    return caller if tenant == DEFAULT_TENANT else f"{caller}@{tenant}"


def _application(claims: dict[str, Any]) -> str:
    """The client application a verified token was issued to: the first of :data:`APPLICATION_CLAIMS` it
    carries, held to the rules of every identity; :data:`UNKNOWN_APPLICATION` when it carries none."""
    for claim in APPLICATION_CLAIMS:
        value = claims.get(claim)
        if value is None:
            continue
        if problem := identity_problem(value):
            raise Unauthorized(f"the token's '{claim}' claim {problem}")
        return value
    return UNKNOWN_APPLICATION


def _roles(claim: Any) -> frozenset[str]:
    """Roles from a JSON list (Entra ID app roles) or a space-separated string (OAuth scopes)."""
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list):
        return frozenset(role for role in claim if isinstance(role, str))
    return frozenset()
