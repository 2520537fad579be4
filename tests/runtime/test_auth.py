"""Callers authenticate with an API key or a JWT (verified against a JWKS served on loopback)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from runtime_helpers import ADMIN_KEY, EXECUTED, USER_KEY, Runtime, RuntimeFactory
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.auth import ApiKeyAuthenticator
from agent_runtime.caller import SYSTEM_TENANT
from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings
from agent_runtime.testing import ServerThread

ISSUER = "https://login.example.test/tenant"
AUDIENCE = "api://agentstage"


def test_api_key_as_bearer_or_api_key_header(runtime: Runtime) -> None:
    assert runtime.http.get("/v1/agents", headers={"Authorization": f"Bearer {USER_KEY}"}).status_code == 200
    assert runtime.http.get("/v1/agents", headers={"api-key": ADMIN_KEY}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "send an API key in 'Authorization: Bearer <key>' or the 'api-key' header"),
        ({"Authorization": "Bearer nope"}, "the API key is not valid"),
        ({"api-key": "nope"}, "the API key is not valid"),
        (
            {"Authorization": f"Basic {USER_KEY}"},
            "send an API key in 'Authorization: Bearer <key>' or the 'api-key' header",
        ),
    ],
)
def test_missing_or_wrong_api_keys_are_401(runtime: Runtime, headers: dict[str, str], message: str) -> None:
    response = runtime.http.get("/v1/agents", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": {"code": "unauthorized", "message": message}}


def test_the_single_dev_key_has_the_configured_roles(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(api_key="dev-key", api_key_roles=["admin"], api_keys=None)
    assert runtime.invoke("assistant", "report", key="dev-key").json()["answer"] == "report on payroll"
    assert EXECUTED == ["admin_report:payroll:api-key"]
    assert runtime.invoke("assistant", "hi", key=USER_KEY).status_code == 401


def test_auth_mode_none_lets_anyone_in_without_roles(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(auth_mode="none")
    body = runtime.invoke("assistant", "report", key=None).json()
    assert body["steps"][1]["outcome"] == "denied"
    assert EXECUTED == []


def test_agents_listing(runtime: Runtime) -> None:
    agents = runtime.http.get("/v1/agents", headers={"api-key": USER_KEY}).json()["agents"]
    assert [a["name"] for a in agents] == ["assistant", "restricted"]
    assert agents[1] == {
        "name": "restricted",
        "description": "",
        "model": "gpt-4o-mini",
        "tools": ["calculator"],
    }


class Issuer:
    """An RSA signing key whose public half is served as a JWKS on loopback."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "key-1"
        self.fetches = 0

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [public | {"kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def app(self) -> Starlette:
        async def keys(request: Any) -> JSONResponse:
            self.fetches += 1
            return JSONResponse(self.jwks())

        return Starlette(routes=[Route("/keys", keys)])

    def token(self, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "iat": now, "exp": now + 300} | claims
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@pytest.fixture
def issuer() -> Iterator[tuple[Issuer, str]]:
    issuer = Issuer()
    with ServerThread(issuer.app()) as server:
        yield issuer, f"{server.url}/keys"


@pytest.fixture
def jwt_runtime(runtime_factory: RuntimeFactory, issuer: tuple[Issuer, str]) -> Runtime:
    return runtime_factory(
        auth_mode="jwt", jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_jwks_url=issuer[1], api_keys=None
    )


def test_a_valid_jwt_authenticates_with_its_roles(jwt_runtime: Runtime, issuer: tuple[Issuer, str]) -> None:
    token = issuer[0].token(roles=["admin"])
    body = jwt_runtime.invoke("assistant", "report", key=token).json()
    assert body["answer"] == "report on payroll"
    assert EXECUTED == ["admin_report:payroll:carol"]


def test_jwt_roles_decide_tool_access(jwt_runtime: Runtime, issuer: tuple[Issuer, str]) -> None:
    body = jwt_runtime.invoke("assistant", "report", key=issuer[0].token(roles=["user"])).json()
    assert body["steps"][1]["outcome"] == "denied"
    assert EXECUTED == []


def test_signing_keys_are_fetched_once_and_cached(jwt_runtime: Runtime, issuer: tuple[Issuer, str]) -> None:
    for _ in range(3):
        assert jwt_runtime.invoke("assistant", "hi", key=issuer[0].token()).status_code == 200
    assert issuer[0].fetches == 1


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "api://other"}, "the token is not valid: Audience doesn't match"),
        ({"iss": "https://evil.test"}, "the token is not valid: Invalid issuer"),
        ({"exp": int(time.time()) - 60}, "the token is not valid: Signature has expired"),
    ],
)
def test_invalid_jwts_are_401(
    jwt_runtime: Runtime, issuer: tuple[Issuer, str], claims: dict[str, Any], message: str
) -> None:
    response = jwt_runtime.invoke("assistant", "hi", key=issuer[0].token(**claims))
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "unauthorized", "message": message}


def test_a_jwt_signed_by_another_key_is_401(jwt_runtime: Runtime) -> None:
    forger = Issuer()
    response = jwt_runtime.invoke("assistant", "hi", key=forger.token())
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the token is not valid: Signature verification failed"


@pytest.mark.parametrize("plain_fastapi", [False, True], ids=["hot route", "FastAPI route"])
def test_a_jwt_naming_another_key_familys_algorithm_is_401(
    runtime_factory: RuntimeFactory, issuer: tuple[Issuer, str], plain_fastapi: bool
) -> None:
    """Both algorithms allowed, as the setting's own example: an ES256 token under the RSA key's kid is
    refused, not an error of the server (PyJWT once read the RSA key as an EC one, and raised)."""
    runtime = runtime_factory(
        plain_fastapi=plain_fastapi,
        auth_mode="jwt",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_jwks_url=issuer[1],
        jwt_algorithms=["RS256", "ES256"],
        api_keys=None,
    )
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}
    forged = jwt.encode(
        body, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "key-1"}
    )
    response = runtime.invoke("assistant", "hi", key=forged)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        "the token is not valid: Token algorithm 'ES256' does not match the key's algorithm 'RS256'"
    )


def test_an_unknown_kid_is_401(jwt_runtime: Runtime, issuer: tuple[Issuer, str]) -> None:
    response = jwt_runtime.invoke("assistant", "hi", key=issuer[0].token(kid="key-2"))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the token's signing key is unknown"


def test_garbage_and_api_keys_are_not_jwts(jwt_runtime: Runtime) -> None:
    for key in ("not-a-jwt", USER_KEY, None):
        response = jwt_runtime.invoke("assistant", "hi", key=key)
        assert response.status_code == 401, key
        assert response.json()["error"]["code"] == "unauthorized"


def test_an_unreachable_jwks_is_503(runtime_factory: RuntimeFactory, issuer: tuple[Issuer, str]) -> None:
    runtime = runtime_factory(
        auth_mode="jwt", jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_jwks_url="http://127.0.0.1:9/keys"
    )
    response = runtime.invoke("assistant", "hi", key=issuer[0].token())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


# --- the calling application: what application budgets count on ---------------------------------------------

PER_APPLICATION = [{"name": "per-app", "scope": "application", "window_seconds": 3600, "requests": 1}]
"""One request per application: the second call of an application is refused, naming it."""


def _application_of(runtime: Runtime, key: str) -> str:
    """The application the runtime counted ``key``'s calls on, as its refusal names it."""
    assert runtime.invoke("restricted", "hi", key=key).status_code == 200
    refused = runtime.invoke("restricted", "hi", key=key)
    assert refused.status_code == 429, refused.text
    budget = refused.json()["error"]["budget"]
    assert (budget["name"], budget["scope"]) == ("per-app", "application")
    return budget["subject"]


@pytest.mark.parametrize(
    ("claims", "application"),
    [
        ({"azp": "web-portal", "client_id": "cognito-client", "appid": "v1-app"}, "web-portal"),
        ({"client_id": "cognito-client", "appid": "v1-app"}, "cognito-client"),
        ({"appid": "v1-app"}, "v1-app"),
        ({"azp": None, "appid": "v1-app"}, "v1-app"),
        ({}, "unknown"),
    ],
)
def test_a_jwt_names_its_application_in_azp_client_id_or_appid(
    runtime_factory: RuntimeFactory, issuer: tuple[Issuer, str], claims: dict[str, Any], application: str
) -> None:
    runtime = runtime_factory(
        auth_mode="jwt",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_jwks_url=issuer[1],
        api_keys=None,
        budgets=json.dumps(PER_APPLICATION),
    )
    assert _application_of(runtime, issuer[0].token(**claims)) == application


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"azp": "a" * 257}, "the token's 'azp' claim must be at most 256 characters, got 257"),
        ({"client_id": "app\x00"}, "the token's 'client_id' claim must not contain control characters"),
        ({"appid": 42}, "the token's 'appid' claim must be a non-empty string, got 42"),
        ({"azp": "", "appid": "v1-app"}, "the token's 'azp' claim must be a non-empty string, got ''"),
    ],
)
def test_a_jwt_with_a_malformed_application_is_401(
    jwt_runtime: Runtime, issuer: tuple[Issuer, str], claims: dict[str, Any], message: str
) -> None:
    response = jwt_runtime.invoke("assistant", "hi", key=issuer[0].token(**claims))
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "unauthorized", "message": message}


def test_a_jwt_naming_the_runtimes_own_tenant_is_401(jwt_runtime: Runtime, issuer: tuple[Issuer, str]) -> None:
    response = jwt_runtime.invoke("assistant", "hi", key=issuer[0].token(tid=SYSTEM_TENANT))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        f"the token's 'tid' claim must not be '{SYSTEM_TENANT}', the tenant of the runtime's own work"
    )


def test_an_api_key_is_its_own_application_unless_its_entry_names_one(
    runtime_factory: RuntimeFactory,
) -> None:
    keys = {
        "portal-key-a-0123456789": {"caller": "ann", "application": "portal"},
        "portal-key-b-0123456789": {"caller": "ben", "application": "portal"},
        "batch-key-0123456789": {"caller": "batch-job"},
    }
    runtime = runtime_factory(api_keys=json.dumps(keys), budgets=json.dumps(PER_APPLICATION))

    assert _application_of(runtime, "portal-key-a-0123456789") == "portal"
    refused = runtime.invoke("restricted", "hi", key="portal-key-b-0123456789")
    assert refused.json()["error"]["budget"]["subject"] == "portal", "keys of one application share its quota"
    assert _application_of(runtime, "batch-key-0123456789") == "batch-job"


def test_the_single_dev_key_is_an_application_of_its_own(runtime_factory: RuntimeFactory) -> None:
    runtime = runtime_factory(api_key="dev-key", api_keys=None, budgets=json.dumps(PER_APPLICATION))
    assert _application_of(runtime, "dev-key") == "api-key"


@pytest.mark.parametrize(
    ("application", "message"),
    [
        ("tab\there", "AGENTSTAGE_API_KEYS entry #1: 'application' must not contain control characters"),
        ("", "AGENTSTAGE_API_KEYS entry #1: 'application' must be a non-empty string, got ''"),
        (["portal"], "AGENTSTAGE_API_KEYS entry #1 must be {"),
    ],
)
def test_a_malformed_api_key_application_is_a_configuration_error(application: Any, message: str) -> None:
    keys = json.dumps({"secret-key-0123456789": {"caller": "ann", "application": application}})
    with pytest.raises(ConfigurationError) as raised:
        ApiKeyAuthenticator.from_settings(Settings(api_keys=keys))
    assert str(raised.value).startswith(message)
    assert "secret-key" not in str(raised.value), "errors never quote the keys"
