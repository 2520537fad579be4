"""The AWS pilot as planned: every grant exactly, nothing unknown in an IAM document, the runtime's settings
accepted by the runtime itself, and the security posture the AWS anchors get wrong by default."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from graph_queries import by_name, runtime_catalog

from core.graph import UNKNOWN, ResourceGraph
from core.stacks import load_stack_config

Graphs = Callable[[str], ResourceGraph]
AWS_STACKS = ("pilot-aws-dev", "pilot-aws-prod")
ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"


def statements(graph: ResourceGraph) -> dict[str, list[dict[str, Any]]]:
    """Inline policy (grant) name -> its statements, for the agent's role."""
    return {p.inputs["name"]: json.loads(p.inputs["policy"])["Statement"] for p in graph.of_type(ROLE_POLICY)}


def arn(service: str, resource: str, *, regional: bool = True) -> str:
    return f"arn:aws:{service}:{REGION if regional else ''}:{ACCOUNT}:{resource}"


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_no_iam_document_holds_an_unknown_value(stack: str, stack_graph: Graphs) -> None:
    """Under plain mocks every ARN is unknown and every IAM check passes vacuously; the AWS profile makes
    each one known, in the real format."""
    graph = stack_graph(stack)
    documents = [
        (r.name, value)
        for r in graph.cloud_resources()
        if r.type.startswith("aws:")
        for key, value in r.inputs.items()
        if key in ("policy", "assumeRolePolicy")
    ]
    assert len(documents) >= 7
    for name, document in documents:
        assert UNKNOWN not in document, f"{name}: {document}"
        for statement in json.loads(document)["Statement"]:
            resources = statement.get("Resource", [])
            for resource in [resources] if isinstance(resources, str) else resources:
                assert resource == "*" or resource.startswith("arn:aws:"), (name, resource)


def test_the_agents_role_holds_exactly_its_grants(stack_graph: Graphs) -> None:
    graph = stack_graph("pilot-aws-dev")
    grants = statements(graph)
    invoke = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    profile = arn("bedrock", "inference-profile/eu.amazon.nova-lite-v1:0")
    key = by_name(graph, "aws:kms/key:Key", "encryption-key").arn
    tables = sorted(
        arn("dynamodb", f"table/ags-dev-{name}") for name in ("conversations", "ledger", "memories")
    )
    assert grants == {
        "kms-use": [{"Sid": "UseStackKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"], "Resource": key}],
        "bedrock-invoke": [
            {"Sid": "InvokeFoundationModels", "Effect": "Allow", "Action": invoke,
             "Resource": f"arn:aws:bedrock:{REGION}::foundation-model/amazon.titan-embed-text-v2:0"},
            {"Sid": "InvokeProfile0", "Effect": "Allow", "Action": invoke, "Resource": profile},
            {"Sid": "InvokeProfileModel0", "Effect": "Allow", "Action": invoke,
             "Resource": "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0",
             "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": profile}}},
            {"Sid": "ApplyGuardrail", "Effect": "Allow", "Action": ["bedrock:ApplyGuardrail"],
             "Resource": by_name(graph, "aws:bedrock/guardrail:Guardrail", "models-guardrail").arn},
        ],
        "state-data": [
            {"Sid": "StateTables", "Effect": "Allow",
             "Action": sorted(["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
                               "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
                               "dynamodb:Query", "dynamodb:UpdateItem"]),
             "Resource": tables},  # no tasks table: the pilot runs no task worker
        ],
        "secrets-read": [
            {"Sid": "ReadSettingsSecret", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
             "Resource": by_name(graph, "aws:secretsmanager/secret:Secret", "secrets-settings").arn},
        ],
        "logs-write": [
            {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": arn("logs", "log-group:/aws/lambda/ags-dev-agent:*")},
        ],
        "xray-write": [
            {"Sid": "UploadTraces", "Effect": "Allow", "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Resource": "*"},
        ],
    }  # fmt: skip
    role = by_name(graph, "aws:iam/role:Role", "agent-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]
    assert not graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"), "no managed policies"


def test_the_function_runs_sealed_traced_and_behind_the_gateway_only(stack_graph: Graphs) -> None:
    graph = stack_graph("pilot-aws-dev")
    function = by_name(graph, FUNCTION, "agent-function")
    key = by_name(graph, "aws:kms/key:Key", "encryption-key").arn
    assert function.inputs["kmsKeyArn"] == key
    assert function.inputs["tracingConfig"] == {"mode": "Active"}
    assert function.inputs["loggingConfig"] == {"logFormat": "JSON", "logGroup": "/aws/lambda/ags-dev-agent"}
    assert (function.inputs["architectures"], function.inputs["timeout"]) == (["arm64"], 29)
    assert function.inputs["code"] == {"path": "build/lambda-arm64-lean.zip"}
    assert not graph.of_type("aws:lambda/functionUrl:FunctionUrl"), "no public function URL"
    permission = by_name(graph, "aws:lambda/permission:Permission", "api-invoke")
    api = by_name(graph, "aws:apigatewayv2/api:Api", "api-api")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["sourceArn"].startswith(arn("execute-api", "")) and permission.inputs[
        "sourceArn"
    ].endswith("/*/$default")
    route = by_name(graph, "aws:apigatewayv2/route:Route", "api-default")
    authorizer = by_name(graph, "aws:apigatewayv2/authorizer:Authorizer", "api-jwt")
    assert (route.inputs["authorizationType"], route.inputs["authorizerId"]) == ("JWT", authorizer.mock_id)
    assert authorizer.inputs["jwtConfiguration"] == {
        "audiences": ["agentstage-dev"],
        "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE00",
    }
    assert api.inputs["protocolType"] == "HTTP"


def test_the_runtime_accepts_the_settings_the_function_is_given(stack_graph: Graphs) -> None:
    environment = by_name(stack_graph("pilot-aws-dev"), FUNCTION, "agent-function").inputs["environment"][
        "variables"
    ]
    catalog = runtime_catalog(environment)
    [assistant] = list(catalog)
    assert assistant.model == "eu.amazon.nova-lite-v1:0", "Bedrock is called by model id, not deployment name"
    assert environment["AGENTSTAGE_LLM_PROVIDER"] == "bedrock" and environment["AGENTSTAGE_LLM_AUTH"] == "aws"
    assert environment["AGENTSTAGE_EMBEDDING_MODEL"] == "amazon.titan-embed-text-v2:0"
    assert json.loads(environment["AGENTSTAGE_MODEL_PRICES"]) == {
        "eu.amazon.nova-lite-v1:0": {"input": 0.06, "output": 0.24},
        "amazon.titan-embed-text-v2:0": {"input": 0.02, "output": 0.0},
    }
    assert environment["AGENTSTAGE_BEDROCK_GUARDRAIL_VERSION"] == "1"
    assert {environment[f"AGENTSTAGE_{b}_BACKEND"] for b in ("STATE", "VECTOR", "BUDGET")} == {"dynamodb"}
    assert environment["AGENTSTAGE_SETTINGS_SECRET_ARN"].startswith(
        arn("secretsmanager", "secret:ags-dev-settings-")
    )
    assert environment["AGENTSTAGE_DEADLINE_SECONDS"] == "28", "answers before API Gateway's 30 s"
    assert not any("KEY" in name and "ARN" not in name for name in environment), (
        "no secret in the environment"
    )


def test_the_guardrail_follows_the_stacks_content_filter(stack_graph: Graphs) -> None:
    guardrail = by_name(stack_graph("pilot-aws-dev"), "aws:bedrock/guardrail:Guardrail", "models-guardrail")
    filters = {
        f["type"]: (f["inputStrength"], f["outputStrength"])
        for f in guardrail.inputs["contentPolicyConfig"]["filtersConfigs"]
    }
    assert filters == {
        **{kind: ("MEDIUM", "MEDIUM") for kind in ("SEXUAL", "VIOLENCE", "HATE", "INSULTS", "MISCONDUCT")},
        "PROMPT_ATTACK": ("HIGH", "NONE"),
    }  # fmt: skip


def test_production_keeps_its_data_and_a_warm_instance(stack_graph: Graphs) -> None:
    dev, prod = stack_graph("pilot-aws-dev"), stack_graph("pilot-aws-prod")
    for graph, protected in ((dev, False), (prod, True)):
        for table in graph.of_type("aws:dynamodb/table:Table"):
            assert table.inputs["deletionProtectionEnabled"] is protected, table.name
            assert table.inputs["pointInTimeRecovery"] == {"enabled": True}
            assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    warm = by_name(prod, "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", "agent-warm")
    assert (warm.inputs["provisionedConcurrentExecutions"], warm.inputs["qualifier"]) == (1, "live")
    permission = by_name(prod, "aws:lambda/permission:Permission", "api-invoke")
    assert permission.inputs["function"].endswith(":function:ags-prod-agent:live"), (
        "the gateway calls the warm alias"
    )


def test_every_log_group_expires_and_is_sealed(stack_graph: Graphs) -> None:
    graph = stack_graph("pilot-aws-prod")
    key = by_name(graph, "aws:kms/key:Key", "encryption-key").arn
    groups = graph.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert {g.inputs["name"] for g in groups} == {
        "/aws/lambda/ags-prod-agent",
        "/aws/apigateway/ags-prod-api",
    }
    config, _ = load_stack_config("pilot-aws-prod")
    assert all(
        g.inputs["retentionInDays"] == config.log_retention_days and g.inputs["kmsKeyId"] == key
        for g in groups
    )
