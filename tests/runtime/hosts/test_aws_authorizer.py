"""The REST API's Lambda authorizer: TOKEN events in API Gateway's documented shape, answered for tokens
signed by a local key whose JWKS is served on loopback."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.errors import ConfigurationError, Unavailable
from agent_runtime.gateway_authorizer import GatewayAuthorizer, GatewayUnauthorized
from agent_runtime.settings import GatewayAuthorizerSettings, Settings
from agent_runtime.startup import describe_settings_error
from agent_runtime.testing import ServerThread

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"
ISSUER = "https://login.example.test/tenant"
AUDIENCE = "api://agentstage"
STAGE_ARN = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod"
METHOD_ARN = f"{STAGE_ARN}/POST/v1/agents/assistant/invoke"
USAGE_KEYS = {"reporting-app": "key-reporting", "*": "key-default"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Issuer:
    """An RSA signing key whose public half is served as a JWKS on loopback; counts the fetches."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fetches = 0

    def app(self) -> Starlette:
        async def keys(request: Request) -> JSONResponse:
            self.fetches += 1
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return JSONResponse({"keys": [public | {"kid": "key-1", "use": "sig", "alg": "RS256"}]})

        return Starlette(routes=[Route("/keys", keys)])

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "tid": "t-1", "iat": now, "exp": now + 300}
        return jwt.encode(body | claims, self.key, algorithm="RS256", headers={"kid": "key-1"})


@pytest.fixture(scope="module")
def issuer() -> Iterator[tuple[Issuer, str]]:
    issuer = Issuer()
    with ServerThread(issuer.app()) as server:
        yield issuer, f"{server.url}/keys"


@asynccontextmanager
async def opened(jwks_url: str, **values: Any) -> AsyncIterator[GatewayAuthorizer]:
    """An authorizer of ``ISSUER`` and ``AUDIENCE`` with ``USAGE_KEYS``, unless ``values`` say otherwise."""
    values = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwt_jwks_url": jwks_url} | values
    settings = GatewayAuthorizerSettings(**{"gateway_usage_plans": USAGE_KEYS} | values)
    authorizer = GatewayAuthorizer.from_settings(settings, httpx.AsyncClient())
    try:
        yield authorizer
    finally:
        await authorizer.close()


@pytest.fixture
async def authorizer(issuer: tuple[Issuer, str]) -> AsyncIterator[GatewayAuthorizer]:
    async with opened(issuer[1]) as authorizer:
        yield authorizer


def event(token: str | None, method_arn: object = METHOD_ARN) -> dict[str, Any]:
    """A TOKEN authorizer event; ``None`` leaves the token out."""
    body: dict[str, Any] = {"type": "TOKEN", "methodArn": method_arn}
    if token is not None:
        body["authorizationToken"] = token
    return body


# -- a valid token -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_valid_token_is_allowed_on_the_whole_stage_with_its_identity_and_usage_plan(
    authorizer: GatewayAuthorizer, issuer: tuple[Issuer, str]
) -> None:
    token = issuer[0].token(azp="reporting-app", roles=["user"])
    answer = await authorizer.authorize(event(f"Bearer {token}"))
    assert answer == {
        "principalId": "carol",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": f"{STAGE_ARN}/*/*"}
            ],
        },
        "context": {"subject": "carol", "tenant": "t-1", "application": "reporting-app"},
        "usageIdentifierKey": "key-reporting",
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("claims", "application", "key"),
    [
        ({"client_id": "reporting-app"}, "reporting-app", "key-reporting"),
        ({"appid": "reporting-app"}, "reporting-app", "key-reporting"),
        ({"azp": "reporting-app", "client_id": "other-app"}, "reporting-app", "key-reporting"),
        ({"azp": "unlisted-app"}, "unlisted-app", "key-default"),
        ({}, "unknown", "key-default"),
    ],
)
async def test_the_usage_plan_is_the_applications_or_the_default(
    authorizer: GatewayAuthorizer,
    issuer: tuple[Issuer, str],
    claims: dict[str, str],
    application: str,
    key: str,
) -> None:
    answer = await authorizer.authorize(event(f"Bearer {issuer[0].token(**claims)}"))
    assert (answer["context"]["application"], answer["usageIdentifierKey"]) == (application, key)


@pytest.mark.anyio
async def test_without_usage_keys_the_answer_names_no_plan(issuer: tuple[Issuer, str]) -> None:
    async with opened(issuer[1], gateway_usage_plans=None) as authorizer:
        answer = await authorizer.authorize(event(f"bearer {issuer[0].token()}"))
    assert "usageIdentifierKey" not in answer
    assert answer["principalId"] == "carol"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method_arn", "stage"),
    [
        (f"{STAGE_ARN}/GET/", STAGE_ARN),
        (f"{STAGE_ARN}/DELETE/v1/conversations/c-1", STAGE_ARN),
        (
            "arn:aws-cn:execute-api:cn-north-1:123456789012:a1b2c3d4e5/staging_2/GET/healthz",
            "arn:aws-cn:execute-api:cn-north-1:123456789012:a1b2c3d4e5/staging_2",
        ),
        (
            "arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:a1b2c3d4e5/prod/GET/v1/agents",
            "arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:a1b2c3d4e5/prod",
        ),
    ],
)
async def test_the_policy_covers_the_called_stage_only(
    authorizer: GatewayAuthorizer, issuer: tuple[Issuer, str], method_arn: str, stage: str
) -> None:
    answer = await authorizer.authorize(event(f"Bearer {issuer[0].token()}", method_arn))
    assert answer["policyDocument"]["Statement"][0]["Resource"] == f"{stage}/*/*"


# -- refusals: 401 ---------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.test"}, "Invalid issuer"),
        ({"aud": "api://other"}, "Audience doesn't match"),
        ({"exp": int(time.time()) - 60}, "Signature has expired"),
        ({"sub": ""}, "the token's 'sub' claim must be a non-empty string"),
    ],
)
async def test_a_token_with_wrong_claims_is_401(
    authorizer: GatewayAuthorizer,
    issuer: tuple[Issuer, str],
    claims: dict[str, Any],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "agentstage.gateway_authorizer")
    with pytest.raises(GatewayUnauthorized) as refused:
        await authorizer.authorize(event(f"Bearer {issuer[0].token(**claims)}"))
    assert str(refused.value) == "Unauthorized"
    assert reason in caplog.text


@pytest.mark.anyio
async def test_a_token_signed_by_another_key_is_401(authorizer: GatewayAuthorizer) -> None:
    with pytest.raises(GatewayUnauthorized):
        await authorizer.authorize(event(f"Bearer {Issuer().token()}"))


@pytest.mark.anyio
async def test_a_token_naming_another_key_familys_algorithm_is_401(issuer: tuple[Issuer, str]) -> None:
    """An ES256 token under the RSA key's kid, both algorithms allowed: ``Unauthorized``, which API Gateway
    answers with 401, not an error it would answer with 500."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}
    forged = jwt.encode(
        body, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "key-1"}
    )
    async with opened(issuer[1], jwt_algorithms=["RS256", "ES256"]) as authorizer:
        with pytest.raises(GatewayUnauthorized, match="^Unauthorized$"):
            await authorizer.authorize(event(f"Bearer {forged}"))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic Y2Fyb2w6c2VjcmV0",
        "Bearer two parts",
        "Bearer not-a-jwt",
        "a.b.c",
    ],
)
async def test_a_missing_or_malformed_authorization_header_is_401(
    authorizer: GatewayAuthorizer, header: str | None
) -> None:
    with pytest.raises(GatewayUnauthorized, match="^Unauthorized$"):
        await authorizer.authorize(event(header))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "method_arn",
    [
        "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/*/GET/v1/agents",
        "arn:aws:execute-api:eu-west-1:123456789012:*/prod/GET/v1/agents",
        "arn:aws:execute-api:eu-west-1:*:a1b2c3d4e5/prod/GET/v1/agents",
        "arn:aws:execute-api:*:123456789012:a1b2c3d4e5/prod/GET/v1/agents",
        "arn:*:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/v1/agents",
        "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod",
        "arn:aws:lambda:eu-west-1:123456789012:function:a1b2c3d4e5/prod/GET/",
        "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/pr?d/GET/v1/agents",
        " arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/",
        None,
        ["arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/GET/"],
    ],
)
async def test_a_method_arn_that_is_not_one_stages_allows_nothing(
    authorizer: GatewayAuthorizer,
    issuer: tuple[Issuer, str],
    method_arn: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wildcard or a foreign ARN would widen a cached allow policy beyond the stage called: refused."""
    caplog.set_level(logging.WARNING, "agentstage.gateway_authorizer")
    with pytest.raises(GatewayUnauthorized):
        await authorizer.authorize(event(f"Bearer {issuer[0].token()}", method_arn))
    assert "methodArn is not the ARN of a method of one API stage" in caplog.text


@pytest.mark.anyio
async def test_the_token_never_reaches_a_log(
    authorizer: GatewayAuthorizer, issuer: tuple[Issuer, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG, through a success and each kind of refusal: the reasons are logged, the
    tokens (and their signatures, enough to replay a cached answer) never."""
    caplog.set_level(logging.DEBUG)
    valid, expired = issuer[0].token(), issuer[0].token(exp=int(time.time()) - 60)
    forged, garbage = Issuer().token(), "not-a-jwt-0123456789abcdef"
    await authorizer.authorize(event(f"Bearer {valid}"))
    for token in (expired, forged, garbage):
        with pytest.raises(GatewayUnauthorized):
            await authorizer.authorize(event(f"Bearer {token}"))
    with pytest.raises(GatewayUnauthorized):
        await authorizer.authorize(event(f"Bearer {valid}", "arn:aws:execute-api:eu-west-1:1:x/*/GET/"))
    assert len([r for r in caplog.records if r.name == "agentstage.gateway_authorizer"]) == 4
    for token in (valid, expired, forged, garbage):
        assert token not in caplog.text
        assert token.rsplit(".", 1)[-1] not in caplog.text


# -- failures that are not the caller's: 500 -------------------------------------------------------------


@pytest.mark.anyio
async def test_an_issuer_whose_keys_cannot_be_fetched_is_not_reported_as_a_bad_token(
    issuer: tuple[Issuer, str],
) -> None:
    """API Gateway answers any failure but ``Unauthorized`` with 500: the caller's token is not to blame."""

    async def unavailable(request: Request) -> JSONResponse:
        return JSONResponse({"error": "maintenance"}, status_code=503)

    with ServerThread(Starlette(routes=[Route("/keys", unavailable)])) as down:
        async with opened(f"{down.url}/keys") as authorizer:
            with pytest.raises(Unavailable, match="cannot fetch the token issuer's signing keys"):
                await authorizer.authorize(event(f"Bearer {issuer[0].token()}"))


@pytest.mark.anyio
async def test_a_request_authorizer_event_is_a_configuration_error(
    authorizer: GatewayAuthorizer, issuer: tuple[Issuer, str]
) -> None:
    request_event = {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": {"Authorization": "Bearer x"}}
    with pytest.raises(ConfigurationError, match="configure the REST API's authorizer with type TOKEN"):
        await authorizer.authorize(request_event)


# -- settings --------------------------------------------------------------------------------------------


def test_the_authorizer_settings_are_the_runtimes_own_fields() -> None:
    """Same variables, types, defaults and validators as :class:`Settings`: infrastructure configures the
    function through ``env_for``, which checks names against ``Settings``."""
    for name, field in GatewayAuthorizerSettings.model_fields.items():
        contract = Settings.model_fields[name]
        assert (field.annotation, field.default, field.metadata) == (
            contract.annotation,
            contract.default,
            contract.metadata,
        ), name


def test_the_authorizer_needs_the_issuer_audience_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSTAGE_JWT_ISSUER", ISSUER)
    with pytest.raises(ValidationError) as error:
        GatewayAuthorizerSettings()
    assert describe_settings_error(error.value) == (
        "the gateway authorizer needs AGENTSTAGE_JWT_AUDIENCE, AGENTSTAGE_JWT_JWKS_URL"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('{"reporting-app": "key-reporting"}', 'needs a "*" entry'),
        ('{"reporting-app": "", "*": "key-default"}', "must be a JSON object mapping client application ids"),
        ('{"*": 7}', "must be a JSON object mapping client application ids"),
        ('["key-default"]', "must be a JSON object mapping client application ids"),
        ("reporting-app=key", "is not valid JSON"),
    ],
)
def test_usage_keys_must_name_a_default_plan(
    monkeypatch: pytest.MonkeyPatch, issuer: tuple[Issuer, str], value: str, problem: str
) -> None:
    for name, setting in {"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE, "JWT_JWKS_URL": issuer[1]}.items():
        monkeypatch.setenv(f"AGENTSTAGE_{name}", setting)
    monkeypatch.setenv("AGENTSTAGE_GATEWAY_USAGE_PLANS", value)
    with pytest.raises(ConfigurationError, match=r"^AGENTSTAGE_GATEWAY_USAGE_PLANS: ") as error:
        GatewayAuthorizer.from_environment()
    assert problem in str(error.value)
    with pytest.raises(ValidationError, match=r"gateway_usage_plans"):
        Settings()  # the runtime's contract refuses it the same way


# -- the Lambda host -------------------------------------------------------------------------------------


def authorizer_env(jwks_url: str) -> dict[str, str]:
    return {
        "AGENTSTAGE_JWT_ISSUER": ISSUER,
        "AGENTSTAGE_JWT_AUDIENCE": AUDIENCE,
        "AGENTSTAGE_JWT_JWKS_URL": jwks_url,
        "AGENTSTAGE_GATEWAY_USAGE_PLANS": json.dumps(USAGE_KEYS),
    }


@pytest.fixture
def host(issuer: tuple[Issuer, str]) -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in authorizer_env(issuer[1]).items():
            patch.setenv(name, value)
        spec = importlib.util.spec_from_file_location("aws_authorizer", RUNTIME / "aws_authorizer.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
        module.loop.run_until_complete(module.authorizer.close())
        module.loop.close()


def test_a_warm_host_reuses_the_signing_keys(host: ModuleType, issuer: tuple[Issuer, str]) -> None:
    fetched = issuer[0].fetches
    for subject in ("carol", "dave"):
        answer = host.handler(event(f"Bearer {issuer[0].token(sub=subject)}"), None)
        assert answer["principalId"] == subject
    with pytest.raises(GatewayUnauthorized):
        host.handler(event("Bearer not-a-jwt"), None)
    assert issuer[0].fetches == fetched + 1


def test_the_host_starts_with_its_own_settings_only_and_without_the_web_app(
    issuer: tuple[Issuer, str],
) -> None:
    """A cold start loads no FastAPI app, model client or agent, and reads no agent setting: an invalid one
    in its environment is not its concern."""
    script = (
        "import json, sys, aws_authorizer\n"
        "answer = aws_authorizer.handler(json.loads(sys.argv[1]), None)\n"
        "loaded = sorted(m for m in ('fastapi', 'openai', 'agent_runtime.api', 'agent_runtime.agents') "
        "if m in sys.modules)\n"
        "print(json.dumps({'answer': answer, 'loaded': loaded}))\n"
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENTSTAGE_")}
    env |= authorizer_env(issuer[1]) | {"AGENTSTAGE_AGENTS": "not json", "AGENTSTAGE_STATE_BACKEND": "nope"}
    token = issuer[0].token(azp="reporting-app")
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(event(f"Bearer {token}"))],
        cwd=RUNTIME,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output = json.loads(result.stdout)
    assert output["loaded"] == []
    assert output["answer"]["usageIdentifierKey"] == "key-reporting"
    assert token not in result.stdout + result.stderr
