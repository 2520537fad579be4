"""The AWS foundation's front door: an API Gateway REST API with a token authorizer and usage plans.

Why a REST API and not the pilot's HTTP API: only REST APIs can carry a WAFv2 web ACL and usage plans
(per-application rates and quotas). They have no JWT authorizer for any OIDC issuer, so a Lambda TOKEN
authorizer (the runtime's ``aws_authorizer.handler``) checks each caller's token - signature, issuer,
audience, expiry - before the orchestrator is invoked, and its answer is cached per token for
``AUTHORIZER_TTL_SECONDS``. The authorizer also names the caller's usage plan: the API keys here have
``apiKeySource: AUTHORIZER``, so API Gateway never reads a key from the request and the key values are
plan selectors, not credentials (:func:`usage_keys`).

- every method requires the authorizer and a usage plan (``api_key_required``), so every caller is
  throttled: by its application's plan, or by the default plan shared by all other applications;
- the stage is throttled as a whole, traced with X-Ray, access-logged (who, what, status, latency -
  never bodies or tokens); execution logs at ERROR level, data tracing off (it would log bodies);
- API Gateway's account-level logging role (one per account and region, serving every REST API there):
  the stack sets one that may write execution logs (``API-Gateway-Execution-Logs_*``) and access logs
  under ``/aws/apigateway/`` - or, in an account whose other APIs log elsewhere, leaves the account's
  own role in place (``account_logging_role``);
- the orchestrator function may be invoked by this API only, the authorizer by its authorizer only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import apigateway, lambda_

from components.aws.context import AwsContext
from components.aws.iam import Statement
from components.aws.logs import access_log_format, log_group, retention
from components.aws.role import ExecutionRole
from components.aws.serverless_agent import LambdaAgent
from components.base import Component

STAGE = "live"
INTEGRATION_TIMEOUT_MS = 29_000
"""A REST API ends a request at 29 s unless the account's quota is raised."""
AUTHORIZER_TTL_SECONDS = 300
BEARER_TOKEN = r"^Bearer [-0-9A-Za-z._~+/]+=*$"
"""Requests whose Authorization header is not a bearer token are refused without invoking the authorizer."""
DEFAULT_PLAN = "*"
ACCESS_LOG_FORMAT = access_log_format(
    caller="$context.authorizer.principalId",
    application="$context.authorizer.application",
    wafStatus="$context.waf.status",
)
"""Who called what and how it ended; never the body or the token."""
LOGGING_ROLE_ACTIONS = (
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:DescribeLogGroups",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
)
"""What API Gateway does with the account's logging role: create and write its log groups and streams
(the managed policy's log reading actions are not needed to write)."""
API_LOG_GROUPS = ("API-Gateway-Execution-Logs_*", "/aws/apigateway/*")


@dataclass(frozen=True)
class UsagePlanSpec:
    """An application's (or, as ``DEFAULT_PLAN``, every other application's) rates and daily quota."""

    client_id: str
    rate_limit: float
    burst_limit: int
    requests_per_day: int | None = None


@dataclass(frozen=True)
class RestGatewayArgs:
    backend: LambdaAgent
    """The function every route reaches (the orchestrator)."""
    authorizer: LambdaAgent
    """The token authorizer; its settings carry :func:`usage_keys` of the same plans."""
    plans: Sequence[UsagePlanSpec]
    """One per application with a plan of its own, and the ``DEFAULT_PLAN``."""
    rate_limit: float = 50.0
    burst_limit: int = 100
    log_retention_days: int = 30
    account_logging_role: str | None = None
    """An existing account-level API Gateway logging role to keep (its ARN); unset, the stack sets one."""

    def __post_init__(self) -> None:
        if sum(plan.client_id == DEFAULT_PLAN for plan in self.plans) != 1:
            raise ValueError(f"the plans need exactly one default plan (client id '{DEFAULT_PLAN}')")


def usage_keys(context: AwsContext, plans: Sequence[UsagePlanSpec]) -> dict[str, str]:
    """client id -> the value of its plan's API key, for the authorizer (``gateway_usage_plans``).

    Named after the stack and the plan (``ags-stg-usage-default``): stable across deployments, unique in
    the region as API Gateway requires, and no secret - with ``apiKeySource: AUTHORIZER`` a key a caller
    sends is ignored, so knowing one grants nothing.
    """
    return {plan.client_id: context.name("usage", _plan_slug(plan.client_id)) for plan in plans}


def _plan_slug(client_id: str) -> str:
    return "default" if client_id == DEFAULT_PLAN else _slug(client_id)


class RestGateway(Component):
    """``agentstage:aws:Gateway``: REST API, authorizer, proxy routes, stage, logging, usage plans.

    Outputs: ``url`` (the stage's invoke URL), ``api_name``, ``stage_name``, ``stage_arn``.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: RestGatewayArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "Gateway", name, opts)
        self._name = name
        api = apigateway.RestApi(
            f"{name}-api",
            name=context.name(name),
            description="agentstage agents: every route needs a bearer token of the stack's issuer",
            endpoint_configuration={"types": "REGIONAL"},
            api_key_source="AUTHORIZER",
            tags=context.tags,
            opts=self.child(),
        )
        authorizer = apigateway.Authorizer(
            f"{name}-authorizer",
            rest_api=api.id,
            name="bearer-token",
            type="TOKEN",
            authorizer_uri=args.authorizer.invoke_arn,
            identity_source="method.request.header.Authorization",
            identity_validation_expression=BEARER_TOKEN,
            authorizer_result_ttl_in_seconds=AUTHORIZER_TTL_SECONDS,
            opts=self.child(),
        )
        lambda_.Permission(
            f"{name}-authorizer-invoke",
            action="lambda:InvokeFunction",
            function=args.authorizer.function_arn,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, "/authorizers/", authorizer.id),
            opts=self.child(),
        )
        proxy = apigateway.Resource(
            f"{name}-proxy",
            rest_api=api.id,
            parent_id=api.root_resource_id,
            path_part="{proxy+}",
            opts=self.child(),
        )
        # Requests without an Authorization header end at API Gateway (400), before the authorizer runs;
        # bodies are the runtime's to validate (it names the field), within the firewall's size limit.
        validator = apigateway.RequestValidator(
            f"{name}-validator",
            rest_api=api.id,
            name="authorization-header",
            validate_request_parameters=True,
            validate_request_body=False,
            opts=self.child(),
        )
        routes = [
            self._route(f"{name}-{path}", api, resource, authorizer, validator, args.backend)
            for path, resource in (("root", api.root_resource_id), ("proxy", proxy.id))
        ]
        lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=args.backend.function_arn,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, f"/{STAGE}/*/*"),
            opts=self.child(),
        )
        deployment = apigateway.Deployment(
            f"{name}-deployment",
            rest_api=api.id,
            description="the proxy routes to the orchestrator",
            triggers={
                "routes": pulumi.Output.all(args.backend.invoke_arn, args.authorizer.invoke_arn).apply(
                    lambda arns: _fingerprint(
                        *arns, INTEGRATION_TIMEOUT_MS, BEARER_TOKEN, AUTHORIZER_TTL_SECONDS
                    )
                )
            },
            opts=self.child(depends_on=[resource for route in routes for resource in route]),
        )
        account = [] if args.account_logging_role else [self._logging_account(name, context)]
        logs = log_group(
            name, context, f"/aws/apigateway/{context.name(name)}", retention(args.log_retention_days), self
        )
        stage = apigateway.Stage(
            f"{name}-stage",
            rest_api=api.id,
            deployment=deployment.id,
            stage_name=STAGE,
            xray_tracing_enabled=True,
            access_log_settings={"destination_arn": logs.arn, "format": ACCESS_LOG_FORMAT},
            tags=context.tags,
            opts=self.child(depends_on=account),
        )
        apigateway.MethodSettings(
            f"{name}-settings",
            rest_api=api.id,
            stage_name=stage.stage_name,
            method_path="*/*",
            settings={
                "metrics_enabled": True,
                "logging_level": "ERROR",
                "data_trace_enabled": False,
                "caching_enabled": False,
                "throttling_rate_limit": args.rate_limit,
                "throttling_burst_limit": args.burst_limit,
            },
            opts=self.child(),
        )
        keys = usage_keys(context, args.plans)
        for plan in args.plans:
            self._usage_plan(name, context, api, stage, plan, keys[plan.client_id])
        self.api_name: pulumi.Output[str] = api.name
        self.stage_name: pulumi.Output[str] = stage.stage_name
        self.stage_arn: pulumi.Output[str] = stage.arn
        self.url: pulumi.Output[str] = stage.invoke_url
        self.register_outputs(
            {
                "url": self.url,
                "api_name": self.api_name,
                "stage_name": self.stage_name,
                "stage_arn": self.stage_arn,
            }
        )

    def _route(
        self,
        name: str,
        api: apigateway.RestApi,
        resource_id: pulumi.Input[str],
        authorizer: apigateway.Authorizer,
        validator: apigateway.RequestValidator,
        backend: LambdaAgent,
    ) -> tuple[apigateway.Method, apigateway.Integration]:
        """ANY method on ``resource_id``: the authorizer and a usage plan first, then the backend (proxy)."""
        method = apigateway.Method(
            f"{name}-any",
            rest_api=api.id,
            resource_id=resource_id,
            http_method="ANY",
            authorization="CUSTOM",
            authorizer_id=authorizer.id,
            api_key_required=True,
            request_parameters={"method.request.header.Authorization": True},
            request_validator_id=validator.id,
            opts=self.child(),
        )
        integration = apigateway.Integration(
            f"{name}-backend",
            rest_api=api.id,
            resource_id=resource_id,
            http_method=method.http_method,
            type="AWS_PROXY",
            integration_http_method="POST",
            uri=backend.invoke_arn,
            timeout_milliseconds=INTEGRATION_TIMEOUT_MS,
            opts=self.child(),
        )
        return method, integration

    def _logging_account(self, name: str, context: AwsContext) -> apigateway.Account:
        """The account's API Gateway logging role (REST APIs log only through it)."""
        role = ExecutionRole(
            f"{name}-logging", context, service="apigateway.amazonaws.com", opts=self.child()
        )
        groups = [context.arn("logs", f"log-group:{group}") for group in API_LOG_GROUPS]
        streams = [pulumi.Output.concat(group, ":log-stream:*") for group in groups]
        role.allow("push-logs", Statement("PushApiLogs", LOGGING_ROLE_ACTIONS, (*groups, *streams)))
        return apigateway.Account(f"{name}-account", cloudwatch_role_arn=role.arn, opts=self.child())

    def _usage_plan(
        self,
        name: str,
        context: AwsContext,
        api: apigateway.RestApi,
        stage: apigateway.Stage,
        plan: UsagePlanSpec,
        key_value: str,
    ) -> None:
        slug = _plan_slug(plan.client_id)
        who = "every application without a plan of its own" if slug == "default" else plan.client_id
        usage_plan = apigateway.UsagePlan(
            f"{name}-plan-{slug}",
            name=context.name(name, slug),
            description=f"Requests of {who}",
            api_stages=[{"api_id": api.id, "stage": stage.stage_name}],
            throttle_settings={"rate_limit": plan.rate_limit, "burst_limit": plan.burst_limit},
            quota_settings=(
                {"limit": plan.requests_per_day, "period": "DAY"} if plan.requests_per_day else None
            ),
            tags=context.tags,
            opts=self.child(),
        )
        key = apigateway.ApiKey(
            f"{name}-key-{slug}",
            name=context.name(name, slug),
            description=f"Selects the usage plan of {who} (set by the authorizer, never sent by callers)",
            value=key_value,
            enabled=True,
            tags=context.tags,
            opts=self.child(),
        )
        apigateway.UsagePlanKey(
            f"{name}-plan-key-{slug}",
            key_id=key.id,
            key_type="API_KEY",
            usage_plan_id=usage_plan.id,
            opts=self.child(),
        )


def _slug(client_id: str) -> str:
    """A resource-name-safe, unique form of a client id (which may hold ':' or '.')."""
    readable = "".join(c if c.isalnum() else "-" for c in client_id.lower())[:24].strip("-")
    return f"{readable}-{hashlib.sha256(client_id.encode()).hexdigest()[:6]}"


def _fingerprint(*parts: str | int) -> str:
    """A new deployment whenever what the routes do changes (a REST API serves its last deployment)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
