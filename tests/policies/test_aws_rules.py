"""The AWS rules beyond their two fixtures: the edges each one must judge right (and the shared ledger)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rule_cases.aws import (
    ACCOUNT,
    BEDROCK,
    FILTERS,
    FUNCTION,
    GUARDRAIL,
    GUARDRAIL_ARN,
    GUARDRAIL_ID,
    INVOKE,
    KEY_ARN,
    LOG_GROUP,
    MODEL_ARN,
    ROLE,
    ROLE_POLICY,
    ROUTE,
    SOURCE_ACCOUNT,
    TABLE,
    TABLE_ARN,
    function,
    guardrail,
    key,
    policy,
    statement,
    table,
    trust,
    with_filter,
)
from rule_cases.base import STACK, res

from core.graph import UNKNOWN, Resource, ResourceGraph
from policies.findings import Finding, Outcome
from policies.rules import StackContext, Stage, all_rules, evaluate, rule_by_id


def _judge(rule_id: str, target: str, *resources: Resource, retention: int = 30) -> Finding:
    graph = ResourceGraph(stack=STACK, project="agentstage", resources=list(resources))
    context = StackContext(Stage.PILOT, retention, (), "fixture")
    found = [f for f in evaluate(graph, context, [rule_by_id(rule_id)]) if f.resource_name == target]
    assert len(found) == 1, found
    return found[0]


def _passes(rule_id: str, target: str, *resources: Resource, **kwargs: Any) -> bool:
    finding = _judge(rule_id, target, *resources, **kwargs)
    return finding.outcome is Outcome.PASSED


# --- the ledger ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "shared"), [("dynamodb", True), ("cosmos", True), ("redis", True), ("sqlite", False)]
)
def test_a_lambda_ledger_is_shared_only_on_a_stage_wide_backend(backend: str, shared: bool) -> None:
    agents = json.dumps([{"name": "assistant", "model": "nova", "token_budget": 8000}])
    agent = res(FUNCTION, "agent", function(AGENTSTAGE_AGENTS=agents, AGENTSTAGE_BUDGET_BACKEND=backend))
    assert _passes("AGS-AI-002", "agent", agent) is shared


def test_a_runtime_that_runs_no_agent_needs_no_shared_ledger() -> None:
    """The knowledge ingestion worker sets AGENTSTAGE_AGENTS=[] (every cloud runtime must): no budget."""
    worker = res(FUNCTION, "worker", function(AGENTSTAGE_BUDGET_BACKEND="sqlite"))
    graph = ResourceGraph(stack=STACK, project="agentstage", resources=[worker])
    assert evaluate(graph, StackContext(Stage.PILOT, 30, (), "fixture"), [rule_by_id("AGS-AI-002")]) == []


# --- Bedrock ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "scoped"),
    [
        (statement(INVOKE, MODEL_ARN), True),
        (statement(["bedrock:*"], "*"), False),
        (statement(["*"], MODEL_ARN.replace("amazon.titan-embed-text-v2:0", "amazon.*")), False),
        (statement(["bedrock:Invoke*"], "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0"), False),
        (statement(INVOKE, "arn:aws:bedrock:eu-west-1:*:inference-profile/eu.amazon.nova-lite-v1:0"), False),
        ({"Effect": "Allow", "Action": INVOKE, "NotResource": MODEL_ARN}, False),
        ({"Effect": "Deny", "Action": INVOKE, "Resource": "*"}, True),
        (statement(["bedrock:ApplyGuardrail"], GUARDRAIL_ARN), True),
    ],
)
def test_bedrock_invocation_is_scoped_to_named_models(granted: dict[str, Any], scoped: bool) -> None:
    assert _passes("AGS-AWS-004", "grant", res(ROLE_POLICY, "grant", policy(granted))) is scoped


def test_bedrock_scope_reads_a_role_s_inline_policies_too() -> None:
    role = res(ROLE, "agent-role", {"inlinePolicies": [{**policy(statement(INVOKE, "*")), "name": "models"}]})
    finding = _judge("AGS-AWS-004", "agent-role", role)
    assert finding.outcome is Outcome.FAILED and "inlinePolicies[models].policy" in finding.message


def test_an_unreadable_policy_document_fails() -> None:
    finding = _judge("AGS-AWS-004", "grant", res(ROLE_POLICY, "grant", {"policy": UNKNOWN}))
    assert finding.outcome is Outcome.FAILED and "not a policy document" in finding.message


def _bedrock_function(guardrail_id: str | None, **extra: str) -> Resource:
    variables = {**BEDROCK, **extra}
    if guardrail_id is not None:
        variables["AGENTSTAGE_BEDROCK_GUARDRAIL_ID"] = guardrail_id
    return res(FUNCTION, "agent", function(**variables))


@pytest.mark.parametrize(
    ("guardrail_id", "attached"),
    [(GUARDRAIL_ID, True), (GUARDRAIL_ARN, True), (UNKNOWN, True), ("someoneelses1", False), ("", False)],
)
def test_the_guardrail_named_is_one_of_the_stack_s(guardrail_id: str, attached: bool) -> None:
    stack_guardrail = res(GUARDRAIL, "models-guardrail", guardrail(), arn=GUARDRAIL_ARN)
    assert _passes("AGS-AWS-005", "agent", stack_guardrail, _bedrock_function(guardrail_id)) is attached


def test_a_guardrail_id_without_a_guardrail_in_the_stack_fails() -> None:
    finding = _judge("AGS-AWS-005", "agent", _bedrock_function(GUARDRAIL_ID))
    assert finding.outcome is Outcome.FAILED and "defines no Bedrock guardrail" in finding.message


def test_functions_that_do_not_call_bedrock_are_not_judged_for_a_guardrail() -> None:
    other = res(FUNCTION, "agent", function(AGENTSTAGE_LLM_PROVIDER="openai"))
    graph = ResourceGraph(stack=STACK, project="agentstage", resources=[other])
    context = StackContext(Stage.PILOT, 30, (), "fixture")
    assert evaluate(graph, context, [rule_by_id("AGS-AWS-005")]) == []


@pytest.mark.parametrize(
    ("filters", "blocks"),
    [
        (FILTERS, True),
        ([f for f in FILTERS if f["type"] != "PROMPT_ATTACK"], False),
        ([f for f in FILTERS if f["type"] != "HATE"], False),
        (with_filter("VIOLENCE", outputStrength="NONE"), False),
        (with_filter("PROMPT_ATTACK", inputAction="NONE"), False),  # detect mode: logged, not blocked
        (with_filter("SEXUAL", inputEnabled=False), False),
        (with_filter("INSULTS", inputAction="BLOCK", outputAction="BLOCK"), True),
    ],
)
def test_the_guardrail_filters_and_blocks(filters: list[dict[str, Any]], blocks: bool) -> None:
    assert _passes("AGS-AWS-006", "g", res(GUARDRAIL, "g", guardrail(filters))) is blocks


# --- keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "customer_managed"),
    [
        (res(TABLE, "t", table()), True),
        (res(TABLE, "t", table(serverSideEncryption={"enabled": False, "kmsKeyArn": KEY_ARN})), False),
        (res(TABLE, "t", table(serverSideEncryption={"enabled": True})), False),
        (res("aws:sns/topic:Topic", "t", {"kmsMasterKeyId": "alias/aws/sns"}), False),
        (
            res(
                "aws:sns/topic:Topic",
                "t",
                {"kmsMasterKeyId": f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/agents"},
            ),
            True,
        ),
        (
            res(
                "aws:secretsmanager/secret:Secret", "t", {"kmsKeyId": "0b5e3c1a-7d2f-4e8a-9c6b-1f2e3d4c5b6a"}
            ),
            True,
        ),
        (res("aws:secretsmanager/secret:Secret", "t", {}), False),
        (res(LOG_GROUP, "t", {"kmsKeyId": "not-a-key"}), False),
        (res(FUNCTION, "t", {"runtime": "python3.11"}), True),  # no environment to encrypt
        (res(FUNCTION, "t", {"environment": {"variables": {"A": "b"}}}), False),
    ],
    ids=lambda value: value.name if isinstance(value, Resource) else str(value),
)
def test_customer_managed_keys(resource: Resource, customer_managed: bool) -> None:
    assert _passes("AGS-AWS-007", "t", resource, key()) is customer_managed


def test_a_key_known_only_after_deployment_counts_when_it_is_the_stack_s() -> None:
    stack_key = key()
    computed = res(LOG_GROUP, "t", {"kmsKeyId": UNKNOWN}, dependencies=(stack_key.urn,))
    assert _passes("AGS-AWS-007", "t", computed, stack_key)
    assert not _passes("AGS-AWS-007", "t", res(LOG_GROUP, "t", {"kmsKeyId": UNKNOWN}), stack_key)


# --- entry points -------------------------------------------------------------------------------------


def test_a_jwt_route_needs_an_authorizer_of_the_stack_that_checks_jwts() -> None:
    route = res(ROUTE, "r", {"routeKey": "$default", "authorizationType": "JWT", "authorizerId": "abc1234"})
    finding = _judge("AGS-AWS-008", "r", route)
    assert finding.outcome is Outcome.FAILED and "no authorizer of this stack" in finding.message
    request = res("aws:apigatewayv2/authorizer:Authorizer", "lambda-auth", {"authorizerType": "REQUEST"})
    pointed = res(ROUTE, "r", {"authorizationType": "JWT", "authorizerId": request.mock_id})
    assert not _passes("AGS-AWS-008", "r", pointed, request)
    assert _passes("AGS-AWS-008", "r", res(ROUTE, "r", {"authorizationType": "AWS_IAM"}))
    assert not _passes("AGS-AWS-008", "r", res(ROUTE, "r", {"routeKey": "GET /health"}))


@pytest.mark.parametrize(
    ("inputs", "scoped"),
    [
        ({"principal": "*"}, False),
        (
            {"principal": "apigateway.amazonaws.com", "sourceArn": "arn:aws:execute-api:eu-west-1:*:*/*"},
            False,
        ),
        (
            {
                "principal": "apigateway.amazonaws.com",
                "sourceArn": f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:*",
            },
            False,
        ),
        ({"principal": "s3.amazonaws.com", "sourceAccount": ACCOUNT}, True),
        ({"principal": "events.amazonaws.com"}, False),
        ({"principal": ACCOUNT}, True),
    ],
)
def test_lambda_permissions_name_their_caller(inputs: dict[str, Any], scoped: bool) -> None:
    permission = res("aws:lambda/permission:Permission", "p", {"action": "lambda:InvokeFunction", **inputs})
    assert _passes("AGS-AWS-010", "p", permission) is scoped


# --- IAM ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "narrow"),
    [
        (statement(["dynamodb:*"], TABLE_ARN), False),
        (statement(["*"], TABLE_ARN), False),
        ({"Effect": "Allow", "NotAction": ["iam:*"], "Resource": TABLE_ARN}, False),
        ({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "NotResource": TABLE_ARN}, False),
        (statement(["dynamodb:GetItem"], f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/*"), False),
        (statement(["s3:GetObject"], "arn:aws:s3:::*"), False),
        (statement(["s3:GetObject"], "arn:aws:s3:::ags-documents/*"), True),
        (
            statement(["logs:PutLogEvents"], f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/a:*"),
            True,
        ),
        (statement(["dynamodb:GetItem", "dynamodb:Query"], TABLE_ARN), True),
        (statement(["xray:PutTraceSegments", "cloudwatch:PutMetricData"], "*"), True),
        (statement(["xray:PutTraceSegments", "sqs:SendMessage"], "*"), False),
        ({"Effect": "Deny", "Action": "*", "Resource": "*"}, True),
    ],
)
def test_iam_statements_name_exact_actions_on_exact_resources(granted: dict[str, Any], narrow: bool) -> None:
    assert _passes("AGS-AWS-011", "grant", res(ROLE_POLICY, "grant", policy(granted))) is narrow


@pytest.mark.parametrize(
    ("arn", "allowed"),
    [
        ("arn:aws:iam::aws:policy/AdministratorAccess", False),
        ("arn:aws:iam::aws:policy/PowerUserAccess", False),
        ("arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess", False),
        ("arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess", True),
        (f"arn:aws:iam::{ACCOUNT}:policy/FullAccessToNothing", True),  # customer managed: AGS-AWS-011's job
    ],
)
def test_no_broad_aws_managed_policy_on_a_role(arn: str, allowed: bool) -> None:
    role = res(ROLE, "role", {**trust(SOURCE_ACCOUNT), "managedPolicyArns": [arn]})
    assert _passes("AGS-AWS-012", "role", role) is allowed


@pytest.mark.parametrize(
    ("document", "scoped"),
    [
        (trust({"StringEquals": {"aws:SourceAccount": "*"}}), False),
        (trust({"ArnLike": {"aws:SourceArn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:a"}}), True),
        (
            {
                "assumeRolePolicy": json.dumps(
                    {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*"}]}
                )
            },
            False,
        ),
        (
            {
                "assumeRolePolicy": json.dumps(
                    {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
                )
            },
            True,
        ),
    ],
)
def test_trust_policies(document: dict[str, Any], scoped: bool) -> None:
    assert _passes("AGS-AWS-013", "role", res(ROLE, "role", document)) is scoped


# --- state and logs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "protection", "passes"),
    [
        ({"agentstage-environment": "dev"}, False, True),
        ({"agentstage-environment": "production"}, False, False),
        ({}, False, False),  # unknown environment: judged as production
        ({}, True, True),
    ],
)
def test_deletion_protection_follows_the_environment_tag(tags: dict, protection: bool, passes: bool) -> None:
    inputs = table(tags=tags, deletionProtectionEnabled=protection)
    assert _passes("AGS-AWS-015", "t", res(TABLE, "t", inputs)) is passes


def test_the_environment_tag_of_the_stack_s_other_resources_counts() -> None:
    untagged = res(TABLE, "t", table(tags={}, deletionProtectionEnabled=False))
    tagged = res(LOG_GROUP, "logs", {"tags": {"agentstage-environment": "dev"}})
    assert _passes("AGS-AWS-015", "t", untagged, tagged)


@pytest.mark.parametrize(("days", "passes"), [(90, True), (30, False), (0, False), (3653, True)])
def test_log_retention_meets_the_stack_minimum(days: int, passes: bool) -> None:
    group = res(LOG_GROUP, "logs", {"retentionInDays": days, "kmsKeyId": KEY_ARN})
    assert _passes("AGS-AWS-016", "logs", group, retention=90) is passes


def test_every_aws_rule_has_an_aws_docs_reference() -> None:
    aws = [r for r in all_rules() if r.id.startswith("AGS-AWS-")]
    assert len(aws) >= 16
    assert all(r.reference.startswith("https://docs.aws.amazon.com/") for r in aws), aws
