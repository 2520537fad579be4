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

from blueprints.aws_base import AwsShared
from components.aws.gateway import HttpApi, HttpApiArgs
from components.aws.monitoring import ApiWatch, FunctionWatch
from core.config import StackConfig

AGENT = "agent"


def deploy_aws(config: StackConfig) -> None:
    assert config.api.issuer is not None  # guaranteed by StackConfig
    shared = AwsShared.build(config)
    context = shared.context
    deadline = config.lambda_function.timeout_seconds - 1
    agent = shared.function(AGENT, shared.runtime_role(AGENT), shared.runtime_settings(AGENT, deadline))
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
    shared.monitoring([FunctionWatch("", agent.function_name)], ApiWatch.http_api(api.api_id))
    pulumi.export("url", api.url)
