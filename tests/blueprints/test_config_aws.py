"""StackConfig per cloud: the neutral sections say what is valid on each cloud, and a wrong value names the key
and what that cloud allows."""

from __future__ import annotations

import pytest

from core.config import parse_stack_config
from tests.blueprints.test_config import SOURCE, error_for, valid_config

BEDROCK_MODELS = [
    {"name": "chat", "model": "eu.amazon.nova-lite-v1:0"},
    {"name": "embeddings", "model": "amazon.titan-embed-text-v2:0"},
]
AWS_KEYS: dict[str, object] = {
    "cloud": "aws",
    "location": "eu-west-1",
    "models": BEDROCK_MODELS,
    "memory": {"embeddingDeployment": "embeddings", "dimensions": 1024},
    "api": {"issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"},
    "budget": {"amount": 50, "contactEmails": ["ops@example.com"]},
}


def aws(**overrides: object) -> dict[str, str]:
    return {**valid_config(**{**AWS_KEYS, **overrides}), "aws:region": "eu-west-1"}


def test_the_aws_pilot_parses_with_lambda_defaults() -> None:
    config = parse_stack_config(aws(), SOURCE)
    assert (config.lambda_function.architecture, config.lambda_function.timeout_seconds) == ("arm64", 29)
    assert (
        config.api.keys_url
        == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"models": [{**BEDROCK_MODELS[0], "capacity": 10}, BEDROCK_MODELS[1]]},
            "agentstage:models[0].capacity describes an Azure OpenAI deployment; Bedrock models are called on demand",
        ),
        (
            {"models": [{"name": "chat", "model": "gpt-4o-mini"}, BEDROCK_MODELS[1]]},
            "agentstage:models[0].model: 'gpt-4o-mini' is not a Bedrock model or inference profile id",
        ),
        (
            {"location": "westeurope"},
            "agentstage:location: 'westeurope' is not an AWS region name; e.g. eu-west-1",
        ),
        ({"api": {}}, "agentstage:api.issuer is needed on aws: the OpenID Connect issuer"),
        (
            {"memory": {"embeddingDeployment": "embeddings", "dimensions": 1536}},
            "agentstage:memory.dimensions: amazon.titan-embed-text-v2:0 returns 256, 512, 1024 dimensions, not 1536",
        ),
        (
            {"functions": {"alwaysReady": 1}},
            "agentstage:functions applies to pilot on azure, foundation on azure",
        ),
        ({"vectorSearch": {"sku": "basic"}}, "agentstage:vectorSearch applies to pilot on azure"),
        (
            {"lambda": {"timeoutSeconds": 30}},
            "agentstage:lambda.timeoutSeconds: Input should be less than 30",
        ),
        ({"budget": None}, "the pilot blueprint on aws needs agentstage:budget"),
    ],
)
def test_what_the_aws_cloud_refuses_is_named(overrides: dict[str, object], message: str) -> None:
    raw = aws(**overrides)
    if overrides.get("budget", ...) is None:
        del raw["agentstage:budget"]
    assert message in error_for(raw)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "models": [
                    {"name": "chat", "model": "gpt-4o-mini"},
                    {"name": "embeddings", "model": "t", "version": "1", "capacity": 1},
                ]
            },
            "agentstage:models[0] (chat): an Azure OpenAI deployment needs version and capacity",
        ),
        (
            {"api": {"issuer": "https://idp.example.com"}},
            "agentstage:api.issuer and agentstage:api.jwksUrl apply to the aws cloud",
        ),
        (
            {"lambda": {"memoryMb": 2048}},
            "agentstage:lambda applies to pilot on aws, foundation on aws, enterprise on aws, not pilot on azure",
        ),
        ({"location": "west-europe"}, "'west-europe' is not an Azure region name"),
    ],
)
def test_what_the_azure_cloud_refuses_is_named(overrides: dict[str, object], message: str) -> None:
    assert message in error_for(valid_config(**overrides))


@pytest.mark.parametrize(("region", "found"), [(None, "it is not set"), ("us-east-1", "it is 'us-east-1'")])
def test_the_provider_region_must_be_the_stacks_location(region: str | None, found: str) -> None:
    raw = aws()
    if region is None:
        del raw["aws:region"]
    else:
        raw["aws:region"] = region
    assert (
        f"aws:region places every resource and must be the stack's location 'eu-west-1' (agentstage:location); {found}"
        in error_for(raw)
    )


def test_an_azure_vm_size_is_checked_on_azure_only() -> None:
    from tests.blueprints.test_config_enterprise import enterprise

    raw = enterprise(
        kubernetes={
            "image": "agsdevcrregistry12345.azurecr.io/a@sha256:" + "a" * 64,
            "agents": ["assistant"],
            "userPool": {"vmSize": "m7i.large"},
        }
    )
    assert "agentstage:kubernetes.userPool.vmSize: 'm7i.large' is not an Azure VM size" in error_for(raw)


ORCHESTRATOR = {
    "instructions": "Route each request.",
    "model": "chat",
    "tokenBudget": 1000,
    "subtaskDeadlineSeconds": 20,
}
PLAN = {"clientId": "portal", "rateLimit": 5, "burstLimit": 10}


def foundation(**overrides: object) -> dict[str, str]:
    return aws(**{"blueprint": "foundation", "orchestrator": ORCHESTRATOR, "apiGateway": {}, **overrides})


def test_the_aws_foundation_parses_with_gateway_defaults() -> None:
    config = parse_stack_config(foundation(), SOURCE)
    assert config.api_gateway is not None
    assert (config.api_gateway.tokens_per_minute, config.api_gateway.max_body_kb) == (20_000, 64)
    assert config.vector_database is None and config.vpc is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            # 30 s is the key's default, made for hosts without API Gateway's 29 s limit.
            {"orchestrator": {k: v for k, v in ORCHESTRATOR.items() if k != "subtaskDeadlineSeconds"}},
            (
                "agentstage:orchestrator.subtaskDeadlineSeconds (30) must be below the orchestrator's run "
                "deadline on Lambda, 28 s (agentstage:lambda.timeoutSeconds minus one"
            ),
        ),
        (
            {"vectorDatabase": {"minCapacity": 0}},
            "agentstage:vectorDatabase: no agent declares the knowledge_search tool, so nothing would read",
        ),
        (
            {"apiGateway": {"usagePlans": [PLAN, PLAN]}},
            "agentstage:apiGateway.usagePlans: each clientId may have one plan only",
        ),
        ({"apiGateway": {"maxBodyKb": 128}}, "agentstage:apiGateway.maxBodyKb"),
        ({"apiGateway": {"accountLoggingRoleArn": "my-role"}}, "agentstage:apiGateway.accountLoggingRoleArn"),
        ({"vpc": {"cidr": "10.0.0.0/8"}}, "agentstage:vpc.cidr"),
        ({"apiGateway": None}, "the foundation blueprint on aws needs agentstage:apiGateway"),
        (
            {
                "agents": [
                    {"name": "research", "instructions": "Find.", "model": "chat", "tokenBudget": 1000},
                    {"name": "research-dlq", "instructions": "Find.", "model": "chat", "tokenBudget": 1000},
                ]
            },
            (
                "agentstage:agents[1].name: 'research-dlq' would give its task queue the name of the "
                "dead-letter queue of agentstage:agents[0].name 'research'"
            ),
        ),
        (
            {"orchestrator": {**ORCHESTRATOR, "name": "assistant-dlq"}},
            (
                "agentstage:orchestrator.name: 'assistant-dlq' would give its task queue the name of the "
                "dead-letter queue of agentstage:agents[0].name 'assistant'"
            ),
        ),
    ],
)
def test_what_the_aws_foundation_refuses_is_named(overrides: dict[str, object], message: str) -> None:
    raw = foundation(**overrides)
    if overrides.get("apiGateway", ...) is None:
        del raw["agentstage:apiGateway"]
    assert message in error_for(raw)


def test_aws_foundation_keys_are_refused_on_the_pilot() -> None:
    assert (
        "agentstage:apiGateway applies to foundation on aws, enterprise on aws, not pilot on aws"
        in error_for(aws(apiGateway={}))
    )
