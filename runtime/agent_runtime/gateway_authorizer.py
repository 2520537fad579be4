"""The AWS REST API's Lambda authorizer: callers' OIDC tokens verified at the gateway, before a request
reaches an agent or counts against a usage plan.

A REST API (the API Gateway kind WAFv2 protects and usage plans meter) verifies JWTs natively only for
Cognito user pools, so a TOKEN authorizer does it for any OIDC issuer: API Gateway hands it the
``Authorization`` header and the called method's ARN, and this module verifies the bearer token with the
runtime's own :class:`~agent_runtime.auth.JwtAuthenticator` (the same issuer, audience, JWKS and claim
settings), then answers in API Gateway's documented shape:

- ``policyDocument`` allows ``execute-api:Invoke`` on every method of the called stage, not only the one
  called: API Gateway caches the answer per token for the authorizer's TTL and applies it to the caller's
  next requests too, which a policy naming a single method would refuse.
- ``principalId`` is the token's subject; ``context`` carries subject, tenant and application (strings:
  API Gateway accepts no other values there), which the backend sees as ``requestContext.authorizer``.
  The backend still verifies the token itself: the gateway is a first line, not the only one.
- ``usageIdentifierKey`` (the API's ``apiKeySource`` is ``AUTHORIZER``) is the API key of the usage plan of
  the caller's application, or the ``"*"`` default's (``gateway_usage_plans``); it selects a plan's
  throttling and quota, it grants nothing.
- A missing, malformed, forged or expired token raises :class:`GatewayUnauthorized`, an exception whose
  message is ``Unauthorized``: API Gateway answers a failed authorizer with that message, and only that
  one, with 401. Any other failure (the issuer's keys out of reach, a wrong
  authorizer type) is a 500, so a caller is never told its valid token is bad.

The token is never logged: a refusal logs its reason only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError
from pydantic_settings import SettingsError

from agent_runtime.auth import JwtAuthenticator
from agent_runtime.caller import Caller
from agent_runtime.errors import ConfigurationError, Unauthorized
from agent_runtime.settings import GatewayAuthorizerSettings
from agent_runtime.startup import describe_settings_error

log = logging.getLogger("agentstage.gateway_authorizer")

UNAUTHORIZED = "Unauthorized"
"""The error message API Gateway answers with 401; an authorizer failing with any other fails with 500."""

DEFAULT_USAGE_KEY = "*"
"""The ``gateway_usage_plans`` entry of callers whose application has no usage plan of its own."""

_BEARER = re.compile(r"Bearer (\S+)", re.IGNORECASE)
_METHOD_ARN = re.compile(
    r"(?P<stage>arn:aws(?:-[a-z]+)*:execute-api:[a-z]+(?:-[a-z]+)+-[0-9]+:[0-9]{12}:[a-z0-9]+/[A-Za-z0-9_-]+)/"
)
"""A method ARN up to its stage: ``arn:<partition>:execute-api:<region>:<account>:<api id>/<stage>/``. No part
of it may be a wildcard, so the policy built on it can never reach beyond the called stage."""


class GatewayUnauthorized(Exception):
    """The caller is refused: API Gateway reads the Lambda error's message (AWS's own examples raise
    ``Exception("Unauthorized")``), so only the message counts, and it names no reason."""

    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


class GatewayAuthorizer:
    """Answers API Gateway's TOKEN authorizer events: an allow policy for the stage, or 401."""

    def __init__(
        self, authenticator: JwtAuthenticator, usage_keys: Mapping[str, str] | None, http: httpx.AsyncClient
    ) -> None:
        self._authenticator = authenticator
        self._usage_keys = usage_keys
        self._http = http

    @classmethod
    def from_settings(cls, settings: GatewayAuthorizerSettings, http: httpx.AsyncClient) -> GatewayAuthorizer:
        """The authorizer ``settings`` describe, fetching the issuer's keys with ``http`` (which it then
        owns: :meth:`close` closes it)."""
        return cls(JwtAuthenticator.from_settings(settings, http), settings.gateway_usage_plans, http)

    @classmethod
    def from_environment(cls) -> GatewayAuthorizer:
        """The authorizer its Lambda function's settings describe, or :class:`ConfigurationError` naming
        each wrong variable (at cold start, not on the first request)."""
        try:
            settings = GatewayAuthorizerSettings()
        except (ValidationError, SettingsError) as error:
            raise ConfigurationError(describe_settings_error(error)) from None
        return cls.from_settings(settings, httpx.AsyncClient())

    async def authorize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """API Gateway's answer to one TOKEN authorizer event (``type``, ``authorizationToken``,
        ``methodArn``); raises :class:`GatewayUnauthorized` for any caller it cannot vouch for."""
        if event.get("type") != "TOKEN":
            raise ConfigurationError(
                f"the gateway authorizer answers TOKEN authorizer events, got type {event.get('type')!r}: "
                "configure the REST API's authorizer with type TOKEN and identity source "
                "method.request.header.Authorization"
            )
        stage = _stage_arn(event.get("methodArn"))
        if stage is None:
            log.warning("request refused: its methodArn is not the ARN of a method of one API stage")
            raise GatewayUnauthorized()
        try:
            caller = await self._authenticator.authenticate(
                bearer=_bearer(event.get("authorizationToken")), api_key=None
            )
        except Unauthorized as refusal:
            log.info("request refused: %s", refusal.message)
            raise GatewayUnauthorized() from None
        return self._allow(caller, stage)

    async def close(self) -> None:
        """Close the HTTP client of the issuer's keys; the authorizer is done after this."""
        await self._http.aclose()

    def _allow(self, caller: Caller, stage: str) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "principalId": caller.id,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": f"{stage}/*/*"}
                ],
            },
            "context": {"subject": caller.id, "tenant": caller.tenant, "application": caller.application},
        }
        if self._usage_keys is not None:
            answer["usageIdentifierKey"] = self._usage_keys.get(
                caller.application, self._usage_keys[DEFAULT_USAGE_KEY]
            )
        return answer


def _stage_arn(method_arn: object) -> str | None:
    """The ARN of the stage ``method_arn`` is a method of, or None when it is no such ARN."""
    found = _METHOD_ARN.match(method_arn) if isinstance(method_arn, str) else None
    return found["stage"] if found else None


def _bearer(header: object) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    found = _BEARER.fullmatch(header) if isinstance(header, str) else None
    if found is None:
        raise Unauthorized("send a JWT in 'Authorization: Bearer <token>'")
    return found[1]
