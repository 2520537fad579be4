"""The AWS pilot's front door: an API Gateway HTTP API that admits only callers with a valid JWT.

- JWT authorizer on every route: API Gateway checks the token's signature, issuer, audience and expiry
  (from the issuer's discovery document) before the function is invoked, so anonymous traffic never
  costs a Lambda invocation. The runtime checks the token again and maps its roles and tenant.
- one ``$default`` route to the agent function (payload format 2.0): the runtime routes inside.
- 30 s: an HTTP API ends every request at 30 s; the function's timeout stays below it (LambdaConfig).
- access logs to a log group with retention and the stack's key; throttling per stage.
- the function may be invoked by this API only (its permission names the API's execution ARN).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_aws import apigatewayv2, lambda_

from components.aws.context import AwsContext
from components.aws.logs import access_log_format, log_group, retention
from components.aws.serverless_agent import LambdaAgent
from components.base import Component

INTEGRATION_TIMEOUT_MS = 30_000
ACCESS_LOG_FORMAT = access_log_format(caller="$context.authorizer.claims.sub")
"""Who called what and how it ended; never the body or the token."""


@dataclass(frozen=True)
class HttpApiArgs:
    """``issuer`` and ``audience`` of callers' tokens; throttling per stage (requests per second, burst)."""

    issuer: str
    audience: str
    agent: LambdaAgent
    rate_limit: float = 50.0
    burst_limit: int = 100
    log_retention_days: int = 30


class HttpApi(Component):
    """``agentstage:aws:Gateway``: API, JWT authorizer, integration, route, stage, invoke permission.

    Outputs: ``url`` (the stage's invoke URL), ``api_id``.
    """

    def __init__(
        self, name: str, context: AwsContext, args: HttpApiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "Gateway", name, opts)
        api = apigatewayv2.Api(
            f"{name}-api",
            name=context.name(name),
            protocol_type="HTTP",
            description="agentstage agents: every route needs a JWT of the stack's issuer",
            tags=context.tags,
            opts=self.child(),
        )
        authorizer = apigatewayv2.Authorizer(
            f"{name}-jwt",
            api_id=api.id,
            name="jwt",
            authorizer_type="JWT",
            identity_sources=["$request.header.Authorization"],
            jwt_configuration={"issuer": args.issuer, "audiences": [args.audience]},
            opts=self.child(),
        )
        integration = apigatewayv2.Integration(
            f"{name}-agent",
            api_id=api.id,
            integration_type="AWS_PROXY",
            integration_uri=args.agent.invoke_arn,
            integration_method="POST",
            payload_format_version="2.0",
            timeout_milliseconds=INTEGRATION_TIMEOUT_MS,
            opts=self.child(),
        )
        apigatewayv2.Route(
            f"{name}-default",
            api_id=api.id,
            route_key="$default",
            authorization_type="JWT",
            authorizer_id=authorizer.id,
            target=pulumi.Output.concat("integrations/", integration.id),
            opts=self.child(),
        )
        logs = log_group(
            name, context, f"/aws/apigateway/{context.name(name)}", retention(args.log_retention_days), self
        )
        stage = apigatewayv2.Stage(
            f"{name}-stage",
            api_id=api.id,
            name="$default",
            auto_deploy=True,
            access_log_settings={"destination_arn": logs.arn, "format": ACCESS_LOG_FORMAT},
            default_route_settings={
                "throttling_rate_limit": args.rate_limit,
                "throttling_burst_limit": args.burst_limit,
                "detailed_metrics_enabled": True,
            },
            tags=context.tags,
            opts=self.child(),
        )
        lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=args.agent.function_arn,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, "/*/$default"),
            opts=self.child(),
        )
        self.api_id: pulumi.Output[str] = api.id
        self.url: pulumi.Output[str] = stage.invoke_url
        self.register_outputs({"url": self.url, "api_id": self.api_id})
