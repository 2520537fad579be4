"""Sections only the aws cloud has (the agents' Lambda functions), and what the neutral sections must say on
AWS (:func:`check_aws`): Bedrock model ids, an OpenID Connect issuer for callers, an AWS region."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from core.config.base import NAMESPACE, Strict
from core.config.regions import check_location

if TYPE_CHECKING:
    from core.config.stack import StackConfig

BEDROCK_MODEL = re.compile(r"^([a-z]{2,4}\.)?[a-z0-9-]+\.[a-z0-9][a-z0-9.:-]*$")
"""A Bedrock foundation-model id (``amazon.nova-lite-v1:0``) or a cross-region inference profile id
(``eu.anthropic.claude-3-5-haiku-20241022-v1:0``)."""
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s]+$")
TITAN_EMBEDDINGS_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)
API_GATEWAY_TIMEOUT_SECONDS = 30
"""An API Gateway HTTP API ends every request at 30 s, whatever the integration still does."""


class LambdaConfig(Strict):
    """Sizing of the agents' Lambda functions (the AWS pilot's compute).

    ``timeoutSeconds`` stays below API Gateway's 30 s so the runtime answers (with its own deadline error)
    before the gateway cuts the connection; ``reservedConcurrency`` is both the scale ceiling and the
    worst-case spend per second; ``provisionedConcurrency`` keeps instances initialised (no cold starts,
    billed while idle).
    """

    memory_mb: int = Field(
        default=1024, ge=512, le=10240, description="Memory (and with it CPU) per instance."
    )
    architecture: Literal["arm64", "x86_64"] = Field(
        default="arm64", description="Graviton (arm64) is cheaper."
    )
    timeout_seconds: int = Field(default=29, ge=5, lt=API_GATEWAY_TIMEOUT_SECONDS)
    reserved_concurrency: int = Field(default=10, ge=1, le=1000)
    provisioned_concurrency: int = Field(default=0, ge=0, le=100)


def check_aws(config: StackConfig) -> None:
    """What the neutral sections must say on AWS."""
    check_location(config.location, ("aws",))
    for index, model in enumerate(config.models):
        azure_only = [key for key in ("version", "capacity", "sku") if key in model.model_fields_set]
        if azure_only:
            raise ValueError(
                f"{NAMESPACE}:models[{index}].{azure_only[0]} describes an Azure OpenAI deployment; Bedrock "
                "models are called on demand by id: remove it"
            )
        if not BEDROCK_MODEL.match(model.model):
            raise ValueError(
                f"{NAMESPACE}:models[{index}].model: '{model.model}' is not a Bedrock model or inference "
                "profile id (e.g. amazon.nova-lite-v1:0, eu.anthropic.claude-3-5-haiku-20241022-v1:0)"
            )
    embedding = next(m for m in config.models if m.name == config.memory.embedding_deployment)
    if embedding.model == TITAN_EMBEDDINGS_V2 and config.memory.dimensions not in TITAN_V2_DIMENSIONS:
        raise ValueError(
            f"{NAMESPACE}:memory.dimensions: {TITAN_EMBEDDINGS_V2} returns "
            f"{', '.join(map(str, TITAN_V2_DIMENSIONS))} dimensions, not {config.memory.dimensions}"
        )
    if not config.api.issuer:
        raise ValueError(
            f"{NAMESPACE}:api.issuer is needed on aws: the OpenID Connect issuer of your callers' tokens "
            "(a Cognito user pool, Entra ID, Okta ...); API Gateway and the runtime accept only its tokens"
        )
    audience = config.api.audience
    if audience is not None and not (_CLIENT_ID.match(audience) or _URI.match(audience)):
        raise ValueError(
            f"{NAMESPACE}:api.audience: '{audience}' is not a token audience API Gateway can match; expected "
            "your identity provider's app client id (letters, digits, '.', '_', '-', e.g. a Cognito app client "
            "id) or a URI without spaces (e.g. api://agentstage, https://api.example.com)"
        )
