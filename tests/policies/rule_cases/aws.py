"""Fixtures for the AWS rules: pulumi-aws inputs as the AWS mock profile records them (ARNs in account
123456789012), IAM documents as the JSON strings components/aws renders."""

from __future__ import annotations

import json
from typing import Any

from rule_cases.base import Case, flip, ref, res

ACCOUNT = "123456789012"
REGION = "eu-west-1"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b5e3c1a-7d2f-4e8a-9c6b-1f2e3d4c5b6a"
GUARDRAIL_ID = "gpdldu6g7ndk"
GUARDRAIL_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:guardrail/{GUARDRAIL_ID}"
MODEL_ARN = f"arn:aws:bedrock:{REGION}::foundation-model/amazon.titan-embed-text-v2:0"
PROFILE_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/eu.amazon.nova-lite-v1:0"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ags-dev-conversations"
API_SOURCE_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:hpgan5wklj/*/$default"

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
GUARDRAIL = "aws:bedrock/guardrail:Guardrail"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TABLE = "aws:dynamodb/table:Table"
AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
ROUTE = "aws:apigatewayv2/route:Route"


def statement(actions: list[str], resources: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    """A role policy's inputs: the document as the JSON string pulumi-aws takes."""
    return {
        "name": "grant",
        "role": "ags-dev-agent",
        "policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
    }


INVOKE = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
SCOPED_INVOKE = (
    statement(INVOKE, MODEL_ARN),
    statement(INVOKE, PROFILE_ARN),
    statement(
        INVOKE,
        "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0",
        Condition={"StringEquals": {"bedrock:InferenceProfileArn": PROFILE_ARN}},
    ),
)


def trust(condition: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if condition is not None:
        body["Condition"] = condition
    return {
        "name": "ags-dev-agent",
        "assumeRolePolicy": json.dumps({"Version": "2012-10-17", "Statement": [body]}),
    }


SOURCE_ACCOUNT = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def function(**variables: str) -> dict[str, Any]:
    return {
        "name": "ags-dev-agent",
        "runtime": "python3.11",
        "kmsKeyArn": KEY_ARN,
        "environment": {"variables": {"AGENTSTAGE_AGENTS": "[]", **variables}},
    }


BEDROCK = {"AGENTSTAGE_LLM_PROVIDER": "bedrock", "AGENTSTAGE_BEDROCK_GUARDRAIL_VERSION": "1"}


def guardrail(filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": "ags-dev-guardrail",
        "blockedInputMessaging": "blocked",
        "blockedOutputsMessaging": "withheld",
        "kmsKeyArn": KEY_ARN,
        "contentPolicyConfig": {"filtersConfigs": FILTERS if filters is None else filters},
    }


FILTERS = [
    *(
        {"type": kind, "inputStrength": "MEDIUM", "outputStrength": "MEDIUM"}
        for kind in ("SEXUAL", "VIOLENCE", "HATE", "INSULTS", "MISCONDUCT")
    ),
    {"type": "PROMPT_ATTACK", "inputStrength": "HIGH", "outputStrength": "NONE"},
]


def with_filter(kind: str, **change: Any) -> list[dict[str, Any]]:
    return [{**f, **change} if f["type"] == kind else f for f in FILTERS]


def table(**change: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "name": "ags-prod-conversations",
        "billingMode": "PAY_PER_REQUEST",
        "hashKey": "pk",
        "attributes": [{"name": "pk", "type": "S"}],
        "pointInTimeRecovery": {"enabled": True},
        "serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY_ARN},
        "deletionProtectionEnabled": True,
        "tags": {"agentstage-environment": "prod"},
    }
    inputs.update(change)
    return inputs


def key() -> Any:
    return res(KEY, "encryption-key", {"enableKeyRotation": True}, arn=KEY_ARN)


def _gateway(route: dict[str, Any]) -> list:
    authorizer = res(
        AUTHORIZER,
        "api-jwt",
        {
            "apiId": "hpgan5wklj",
            "authorizerType": "JWT",
            "identitySources": ["$request.header.Authorization"],
            "jwtConfiguration": {
                "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE00",
                "audiences": ["agentstage-dev"],
            },
        },
    )
    inputs = {"apiId": "hpgan5wklj", "routeKey": "$default", "authorizerId": ref(authorizer), **route}
    return [authorizer, res(ROUTE, "api-default", inputs, dependencies=(authorizer.urn,))]


CASES = {
    "AGS-AWS-004": flip(
        ROLE_POLICY,
        "agent-bedrock-invoke",
        policy(*SCOPED_INVOKE),
        policy(statement(INVOKE, f"arn:aws:bedrock:{REGION}::foundation-model/*")),
    ),
    "AGS-AWS-005": Case(
        target="agent-function",
        passing=lambda: [
            res(GUARDRAIL, "models-guardrail", guardrail(), arn=GUARDRAIL_ARN),
            res(
                FUNCTION, "agent-function", function(**BEDROCK, AGENTSTAGE_BEDROCK_GUARDRAIL_ID=GUARDRAIL_ID)
            ),
        ],
        failing=lambda: [
            res(GUARDRAIL, "models-guardrail", guardrail(), arn=GUARDRAIL_ARN),
            res(FUNCTION, "agent-function", function(**BEDROCK)),
        ],
    ),
    "AGS-AWS-006": flip(
        GUARDRAIL,
        "models-guardrail",
        guardrail(),
        {"contentPolicyConfig": {"filtersConfigs": with_filter("PROMPT_ATTACK", inputStrength="NONE")}},
    ),
    "AGS-AWS-007": flip(
        LOG_GROUP,
        "agent-logs",
        {"name": "/aws/lambda/ags-dev-agent", "retentionInDays": 30, "kmsKeyId": KEY_ARN},
        {"kmsKeyId": None},
        extra=lambda: [key()],
    ),
    "AGS-AWS-008": Case(
        target="api-default",
        passing=lambda: _gateway({"authorizationType": "JWT"}),
        failing=lambda: _gateway({"authorizationType": "NONE"}),
    ),
    "AGS-AWS-009": flip(
        "aws:lambda/functionUrl:FunctionUrl",
        "agent-url",
        {"functionName": "ags-dev-agent", "authorizationType": "AWS_IAM"},
        {"authorizationType": "NONE"},
    ),
    "AGS-AWS-010": flip(
        "aws:lambda/permission:Permission",
        "api-invoke",
        {
            "action": "lambda:InvokeFunction",
            "function": "ags-dev-agent",
            "principal": "apigateway.amazonaws.com",
            "sourceArn": API_SOURCE_ARN,
        },
        {"sourceArn": None},
    ),
    "AGS-AWS-011": flip(
        ROLE_POLICY,
        "agent-state-data",
        policy(
            statement(["dynamodb:GetItem", "dynamodb:PutItem"], [TABLE_ARN, f"{TABLE_ARN}/index/by_owner"]),
            statement(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
        ),
        policy(statement(["dynamodb:GetItem", "dynamodb:PutItem"], "*")),
    ),
    "AGS-AWS-012": flip(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "agent-basic",
        {
            "role": "ags-dev-agent",
            "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        },
        {"policyArn": "arn:aws:iam::aws:policy/AmazonBedrockFullAccess"},
    ),
    "AGS-AWS-013": flip(ROLE, "agent-role", trust(SOURCE_ACCOUNT), trust(None)),
    "AGS-AWS-014": flip(TABLE, "state-conversations", table(), {"pointInTimeRecovery": {"enabled": False}}),
    "AGS-AWS-015": flip(TABLE, "state-conversations", table(), {"deletionProtectionEnabled": False}),
    "AGS-AWS-016": flip(
        LOG_GROUP,
        "agent-logs",
        {"name": "/aws/lambda/ags-dev-agent", "kmsKeyId": KEY_ARN, "retentionInDays": 30},
        {"retentionInDays": None},
    ),
}
