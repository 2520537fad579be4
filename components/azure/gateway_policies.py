"""The gateway's policy documents, built from its settings with :mod:`components.azure.apim_policies`.

Values known only at deployment (the tenant, client application ids, the gateway identity's client
id) are referenced as APIM named values (``{{name}}``), which the gateway creates. The XML itself is
therefore plain text known before deployment: tests and ``agentstage plan`` read the exact policy
that will run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.azure.apim_policies import (
    AzureAdTokenValidation,
    Dimension,
    EmitTokenMetric,
    ForwardRequest,
    ManagedIdentityAuth,
    Policy,
    PolicyDocument,
    RemoveHeader,
    RequiredClaim,
    Retry,
    SetBackend,
    TokenLimit,
    named_value,
    status_is,
)
from components.azure.identity import ManagedIdentity

COGNITIVE_SERVICES = "https://cognitiveservices.azure.com"
"""The token audience Azure OpenAI accepts for Entra ID authentication."""

CALLER_TOKEN = "caller-token"
CALLER_APP = (
    f'@{{ var token = (Jwt)context.Variables["{CALLER_TOKEN}"]; '
    'return token.Claims.GetValueOrDefault("azp", token.Claims.GetValueOrDefault("appid", "unknown")); }'
)
"""The validated caller's application id (``azp`` in v2.0 tokens, ``appid`` in v1.0): which agent or front
end called. Bounded by the allow-list, so it is a safe metric dimension and counter key, and taken from
the checked token, so it cannot be spoofed by a header - unlike a subscription key, it is no secret."""

DEFAULT_DIMENSIONS = (
    Dimension("API ID"),
    Dimension("Backend ID"),
    Dimension("Agent", CALLER_APP),
)

IDENTITY_CLIENT_ID = "gateway-identity-client-id"
TENANT_ID = "entra-tenant-id"
AUDIENCE = "gateway-audience"


@dataclass(frozen=True)
class JwtArgs:
    """Who may call the gateway: Entra ID tokens of the deployment's tenant (``AzureContext.tenant_id``).

    - ``audience``: the gateway's application ID URI or client id, the ``aud`` the tokens must carry.
    - ``client_application_ids``: applications whose tokens are accepted (the agents' managed
      identity client ids, a front end); at least one, as ``validate-azure-ad-token`` requires.
    - ``required_role``: an app role the token must carry in ``roles``; default ``None`` (any token
      of an allowed application). Set it to grant access per role assignment rather than per app.
    """

    audience: pulumi.Input[str]
    client_application_ids: tuple[pulumi.Input[str], ...]
    required_role: str | None = None

    def __post_init__(self) -> None:
        if not self.client_application_ids:
            raise ValueError("jwt.client_application_ids needs at least one application (client) id")


@dataclass(frozen=True)
class GatewayPolicies:
    """Builds the policy XML of each gateway API from the gateway's settings."""

    jwt: JwtArgs
    token_limit: TokenLimit | None
    metric_namespace: str
    metric_dimensions: tuple[Dimension, ...] | None
    model_pool_id: str
    model_backends: int

    def named_values(
        self, identity: ManagedIdentity, tenant_id: pulumi.Input[str]
    ) -> dict[str, pulumi.Input[str]]:
        """Named value id -> value, for every ``{{id}}`` the policies reference."""
        return {
            IDENTITY_CLIENT_ID: identity.client_id,
            TENANT_ID: tenant_id,
            AUDIENCE: self.jwt.audience,
            **{_client_app(i): app for i, app in enumerate(self.jwt.client_application_ids)},
        }

    def _authenticate_caller(self) -> Policy:
        claims = (RequiredClaim("roles", (self.jwt.required_role,)),) if self.jwt.required_role else ()
        return AzureAdTokenValidation(
            tenant_id=named_value(TENANT_ID),
            client_application_ids=tuple(
                named_value(_client_app(i)) for i in range(len(self.jwt.client_application_ids))
            ),
            audiences=(named_value(AUDIENCE),),
            required_claims=claims,
            output_token_variable_name=CALLER_TOKEN,
        )

    def models(self) -> str:
        """``/openai``: authenticate, limit and meter tokens, then call the pool as the gateway identity.

        The caller's ``api-key`` header is dropped and ``Authorization`` is replaced by the gateway's
        own token, so nothing the caller sends can authenticate to the model. With several backends a
        429 is retried at once: the throttled backend's breaker has opened, so the pool picks another.
        """
        inbound: list[Policy] = [self._authenticate_caller(), RemoveHeader("api-key")]
        if self.token_limit is not None:
            inbound.append(self.token_limit)
        inbound += [
            EmitTokenMetric(self.metric_namespace, self.metric_dimensions or DEFAULT_DIMENSIONS),
            ManagedIdentityAuth(COGNITIVE_SERVICES, client_id=named_value(IDENTITY_CLIENT_ID)),
            SetBackend(self.model_pool_id),
        ]
        backend: tuple[Policy, ...] = ()
        if self.model_backends > 1:
            forward = ForwardRequest(buffer_request_body=True)
            backend = (Retry(status_is(429), count=self.model_backends - 1, then=(forward,)),)
        return PolicyDocument(inbound=tuple(inbound), backend=backend).render()

    def agent(self, backend_id: str) -> str:
        """``/agents/<name>``: authenticate the caller, then forward to that agent's backend."""
        return PolicyDocument(inbound=(self._authenticate_caller(), SetBackend(backend_id))).render()


def _client_app(index: int) -> str:
    return f"gateway-client-app-{index}"
