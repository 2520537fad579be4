"""Stage 1 on AWS - the serverless single-agent pilot.

One Lambda function runs the configured agents behind an API Gateway HTTP API that admits only callers
with a JWT of the stack's issuer. Bedrock serves the models through the stack's guardrail; DynamoDB keeps
conversations, vector memory, task records and the budget ledger so the function is stateless; Secrets
Manager holds the secret settings; one customer-managed KMS key seals logs, tables, secrets and the
function's environment. CloudWatch alarms (errors, throttles, latency, 5xx, token spend) and an AWS Budget
page the stack's contacts. The function's role gets exactly the statements each block grants - no managed
policy, no ``*`` where AWS scopes the action.
"""

from __future__ import annotations

import pulumi
from pulumi_aws import get_caller_identity_output

from blueprints.packages import runtime_package
from blueprints.topology import Topology, stack_tags
from components.aws.context import AwsContext
from components.aws.encryption import Encryption
from components.aws.gateway import HttpApi, HttpApiArgs
from components.aws.models import BedrockModels, ModelsArgs
from components.aws.monitoring import ModelPrice, Monitoring, MonitoringArgs
from components.aws.role import ExecutionRole
from components.aws.secrets import SETTINGS_SECRET_VARIABLE, Secrets
from components.aws.serverless_agent import LambdaAgent, LambdaAgentArgs
from components.aws.state import StateTables, StateTablesArgs
from components.packaging import LAMBDA
from core.config import StackConfig

AGENT = "agent"


def deploy_aws(config: StackConfig) -> None:
    assert config.budget is not None and config.api.issuer is not None  # guaranteed by StackConfig
    identity = get_caller_identity_output()
    context = AwsContext(
        name_prefix=config.name_prefix,
        environment=config.environment,
        region=config.location,
        account_id=identity.account_id,
        tags=stack_tags(config),
    )
    topology = Topology(config, called={model.name: model.model for model in config.models})
    encryption = Encryption("encryption", context)
    context = context.with_key(encryption.key_arn)
    models = BedrockModels(
        "models",
        context,
        ModelsArgs(
            model_ids=[model.model for model in config.models],
            severity_threshold=config.content_filter.severity_threshold,
            block_prompt_attacks=config.content_filter.block_prompt_attacks,
        ),
    )
    state = StateTables(
        "state",
        context,
        StateTablesArgs(
            deletion_protection=config.environment in PROTECTED_ENVIRONMENTS, tasks=topology.queued
        ),
    )
    secrets = Secrets("secrets", context)
    role = ExecutionRole(AGENT, context)
    encryption.grant_use(role)
    models.grant_invoke(role)
    state.grant_data_access(role)
    secrets.grant_read(role)

    function = config.lambda_function
    agent = LambdaAgent(
        AGENT,
        context,
        LambdaAgentArgs(
            role=role,
            package=runtime_package(LAMBDA.for_architecture(function.architecture)),
            runtime_settings={
                **topology.agent_settings(AGENT),
                **models.runtime_settings(),
                **state.runtime_settings(),
                **caller_auth_settings(config),
                "telemetry_exporter": "none",
                "deadline_seconds": str(function.timeout_seconds - 1),
            },
            host_environment={SETTINGS_SECRET_VARIABLE: secrets.secret_arn},
            architecture=function.architecture,
            memory_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
            reserved_concurrency=function.reserved_concurrency,
            provisioned_concurrency=function.provisioned_concurrency,
            log_retention_days=config.log_retention_days,
        ),
    )
    api = HttpApi(
        "api",
        context,
        HttpApiArgs(
            issuer=config.api.issuer,
            audience=config.api_audience,
            agent=agent,
            log_retention_days=config.log_retention_days,
        ),
    )
    alerts, budget = config.alerts, config.budget
    Monitoring(
        "monitoring",
        context,
        MonitoringArgs(
            function_name=agent.function_name,
            api_id=api.api_id,
            prices=[
                ModelPrice(m.model, m.input_price_per_million or 0.0, m.output_price_per_million or 0.0)
                for m in config.models
            ],
            contact_emails=budget.contact_emails,
            budget_usd=budget.amount,
            budget_thresholds=budget.thresholds,
            **(
                {}
                if alerts is None
                else {
                    "server_error_percent": alerts.server_error_percent,
                    "latency_p95_ms": alerts.latency_p95_ms,
                    "daily_spend_usd": alerts.daily_spend_usd,
                }
            ),
        ),
    )
    pulumi.export("url", api.url)


PROTECTED_ENVIRONMENTS = frozenset({"prod", "production"})
"""Environments whose tables refuse deletion (DynamoDB deletion protection): the stack's data outlives a
mistaken ``pulumi destroy``."""


def caller_auth_settings(config: StackConfig) -> dict[str, str]:
    """The runtime checks callers' tokens again behind API Gateway: same issuer and audience, and the roles
    and tenant claims it maps to tool access and ownership."""
    assert config.api.issuer is not None and config.api.keys_url is not None
    return {
        "auth_mode": "jwt",
        "jwt_issuer": config.api.issuer,
        "jwt_audience": config.api_audience,
        "jwt_jwks_url": config.api.keys_url,
    }
