"""Callers authenticate with an API key or a JWT (verified against a JWKS served on loopback)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from runtime_helpers import ADMIN_KEY, EXECUTED, USER_KEY, Runtime, RuntimeFactory
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

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
