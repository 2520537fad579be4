"""Caller authentication: API keys or JWT bearer tokens, mapped to a :class:`Caller` with roles.

The mode is a setting (``AGENTSTAGE_AUTH_MODE``). API keys are kept only as SHA-256 digests in memory, so
a lookup never compares secrets byte by byte and a key never appears in a repr or a log. JWTs are verified
against the issuer's JWKS, fetched asynchronously and cached; an unknown ``kid`` triggers one refresh, so
key rotation works without a restart.

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
"""Unknown ``kid`` values refresh the key set at most this often, so forged tokens cannot flood the issuer."""


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
    """The issuer's signing keys by ``kid``, refreshed after ``ttl`` seconds or on an unknown ``kid``."""

    def __init__(self, url: str, http: httpx.AsyncClient, ttl: float) -> None:
        self._url = url
        self._http = http
        self._ttl = ttl
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK:
        now = asyncio.get_running_loop().time()
        stale = now - self._fetched_at > self._ttl
        if stale or (kid not in self._keys and now - self._fetched_at > JWKS_MIN_REFRESH_SECONDS):
            async with self._lock:
                if self._fetched_at < now:  # nobody refreshed while this task waited for the lock
                    await self._refresh()
        try:
            return self._keys[kid]
        except KeyError:
            raise Unauthorized("the token's signing key is unknown") from None

    async def _refresh(self) -> None:
        try:
            response = await self._http.get(self._url, timeout=5.0)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as error:
            raise Unavailable(
                f"cannot fetch the token issuer's signing keys: {type(error).__name__}"
            ) from error
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        self._fetched_at = asyncio.get_running_loop().time()


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
            if not isinstance(kid, str):
                raise Unauthorized("the token has no 'kid' header")
            key = await self._keys.key(kid)
            claims = jwt.decode(
                bearer,
                key.key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the token is not valid: {error}") from error
        tenant = claims.get(self._tenant_claim)
        subject, tenant = str(claims["sub"]), str(tenant) if tenant else DEFAULT_TENANT
        for claim, problem in (
            ("sub", identity_problem(subject)),
            (self._tenant_claim, tenant_problem(tenant)),
        ):
            if problem:
                raise Unauthorized(f"the token's '{claim}' claim {problem}")
        return Caller(subject, _roles(claims.get(self._roles_claim)), tenant, _application(claims))


def build_authenticator(settings: Settings, http: httpx.AsyncClient) -> Authenticator:
    if settings.auth_mode == "none":
        return Anonymous()
    if settings.auth_mode == "api_key":
        return ApiKeyAuthenticator.from_settings(settings)
    return JwtAuthenticator.from_settings(settings, http)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


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
