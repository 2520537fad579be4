"""Sections only the aws cloud has (the agents' Lambda functions), and what the neutral sections must say on
AWS (:func:`check_aws`): Bedrock model ids, an OpenID Connect issuer for callers, an AWS region."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from core.config.base import NAMESPACE, Strict, pattern
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


class UsagePlanConfig(Strict):
    """A calling application's own API Gateway usage plan: its request rate, burst and daily quota.

    The gateway's Lambda authorizer selects the plan from the validated token's client id (``azp``,
    ``client_id`` or ``appid``); applications without a plan of their own share the default plan.
    """

    client_id: str = Field(
        pattern=pattern(r"^[A-Za-z0-9._:-]{1,128}$", "1-128 letters, digits, '.', '_', ':' or '-'"),
        description="The application's client id as its tokens carry it.",
    )
    rate_limit: float = Field(gt=0, le=10_000, description="Steady requests per second.")
    burst_limit: int = Field(ge=1, le=5_000, description="Requests admitted at once above the rate.")
    requests_per_day: int | None = Field(default=None, ge=1, description="Daily quota; none by default.")


class AwsGatewayConfig(Strict):
    """The AWS foundation's front door: an API Gateway REST API with a WAF web ACL.

    API Gateway enforces the request rates (per stage and per application's usage plan) and the WAF its
    rules; it has no token-limit policy, so ``tokensPerMinute`` per calling application is enforced by the
    runtime on the stage's shared ledger (DynamoDB), answering 429 with ``Retry-After`` like the Azure
    gateway.
    """

    rate_limit: float = Field(default=50.0, gt=0, le=10_000, description="Stage-wide requests per second.")
    burst_limit: int = Field(default=100, ge=1, le=5_000, description="Stage-wide burst.")
    default_rate_limit: float = Field(
        default=10.0, gt=0, le=10_000, description="Per application without a usage plan of its own."
    )
    default_burst_limit: int = Field(default=20, ge=1, le=5_000)
    default_requests_per_day: int | None = Field(default=None, ge=1)
    usage_plans: tuple[UsagePlanConfig, ...] = ()
    tokens_per_minute: int = Field(default=20_000, ge=100, description="Token limit per calling application.")
    requests_per_five_minutes_per_ip: int = Field(
        default=2_000, ge=100, le=2_000_000_000, description="The WAF's rate-based rule per client address."
    )
    account_logging_role_arn: str | None = Field(
        default=None,
        pattern=pattern(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@/_-]+$", "an IAM role ARN"),
        description="Keep this existing account-level API Gateway logging role instead of setting the stack's "
        "(one role per account and region serves every REST API there).",
    )
    max_body_kb: int = Field(
        default=64,
        ge=16,
        le=64,
        description="Larger request bodies are blocked by the WAF (16-64 KB: what it can inspect on API Gateway).",
    )


class VpcConfig(Strict):
    """The private network of the stage's data services and the functions that reach them."""

    cidr: str = Field(
        default="10.60.0.0/16",
        pattern=pattern(
            r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])$", "an IPv4 range from /16 to /24, e.g. 10.60.0.0/16"
        ),
    )
    availability_zones: int = Field(default=2, ge=2, le=3, description="Zones with a private subnet each.")


class VectorDatabaseConfig(Strict):
    """The shared knowledge index: Aurora PostgreSQL Serverless v2 with pgvector.

    ``minCapacity: 0`` lets the cluster pause when idle (storage is then all it costs); the first query
    after a pause waits for it to resume (about 15 seconds).
    """

    min_capacity: float = Field(
        default=0.0, ge=0, le=256, description="Aurora capacity units (ACU) when idle."
    )
    max_capacity: float = Field(default=4.0, ge=1, le=256, description="ACU ceiling under load.")
    seconds_until_auto_pause: int = Field(default=900, ge=300, le=86_400)
    backup_retention_days: int = Field(default=7, ge=1, le=35)


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
    deadline = config.lambda_function.timeout_seconds - 1
    if config.orchestrator is not None and config.orchestrator.subtask_deadline_seconds >= deadline:
        raise ValueError(
            f"{NAMESPACE}:orchestrator.subtaskDeadlineSeconds ({config.orchestrator.subtask_deadline_seconds:g}) "
            f"must be below the orchestrator's run deadline on Lambda, {deadline} s ({NAMESPACE}:lambda."
            "timeoutSeconds minus one: API Gateway ends every request at 29 s); leave time to route and combine "
            f"the answers, e.g. {max(1, deadline - 8)}"
        )
    readers = [agent.name for agent in config.agents if "knowledge_search" in agent.tools]
    if config.vector_database is not None and not readers:
        raise ValueError(
            f"{NAMESPACE}:vectorDatabase: no agent declares the knowledge_search tool, so nothing would read "
            "the knowledge index; remove the section or give an agent the tool"
        )
    plans = [plan.client_id for plan in config.api_gateway.usage_plans] if config.api_gateway else []
    if len(plans) != len(set(plans)):
        raise ValueError(f"{NAMESPACE}:apiGateway.usagePlans: each clientId may have one plan only")
    audience = config.api.audience
    if audience is not None and not (_CLIENT_ID.match(audience) or _URI.match(audience)):
        raise ValueError(
            f"{NAMESPACE}:api.audience: '{audience}' is not a token audience API Gateway can match; expected "
            "your identity provider's app client id (letters, digits, '.', '_', '-', e.g. a Cognito app client "
            "id) or a URI without spaces (e.g. api://agentstage, https://api.example.com)"
        )
