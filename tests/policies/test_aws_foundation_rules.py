"""The AWS foundation rules beyond their two fixtures: the references, wildcards and exemptions each must
judge right, and queue encryption under AGS-AWS-007."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rule_cases.aws import ACCOUNT, KEY_ARN, REGION, ROLE_POLICY, key, statement
from rule_cases.aws_foundation import (
    CLUSTER,
    CLUSTER_INPUTS,
    CLUSTER_INSTANCE,
    INSTANCE_INPUTS,
    INTEGRATION,
    MAX_RETENTION,
    PROXY_RESOURCE,
    RESEARCH_QUEUE,
    SEND_ACTIONS,
    WRITER_QUEUE,
    agents,
    association,
    authorizer,
    dead_letter,
    firewalled,
    grant,
    method,
    method_settings,
    queue,
    queue_arn,
    receives,
    redrive_policy,
    rest_api,
    rest_stage,
    role,
    sends,
    task_queue,
    throttled,
    web_acl,
)
from rule_cases.base import STACK, res

from core.graph import SECRET, UNKNOWN, Resource, ResourceGraph
from policies.findings import Finding, Outcome
from policies.rules import StackContext, Stage, all_rules, evaluate, rule_by_id
from policies.rules import aws_foundation as foundation


def _judge(rule_id: str, target: str, resources: list[Resource]) -> Finding:
    graph = ResourceGraph(stack=STACK, project="agentstage", resources=resources)
    context = StackContext(Stage.FOUNDATION, 30, (), "fixture")
    found = [f for f in evaluate(graph, context, [rule_by_id(rule_id)]) if f.resource_name == target]
    assert len(found) == 1, found
    return found[0]


def _passes(rule_id: str, target: str, resources: list[Resource]) -> bool:
    return _judge(rule_id, target, resources).outcome is Outcome.PASSED


def _message(rule_id: str, target: str, resources: list[Resource]) -> str:
    finding = _judge(rule_id, target, resources)
    assert finding.outcome is Outcome.FAILED, finding.message
    return finding.message


STAGE = "gateway-stage-live"


# --- the registry -------------------------------------------------------------------------------------


def test_the_foundation_rules_follow_the_aws_ones_and_start_at_the_foundation_stage() -> None:
    ids = [r.id for r in all_rules()]
    new = [r.id for r in foundation.RULES]
    assert new == [f"AGS-AWS-{n:03d}" for n in range(17, 24)]
    assert ids.index(new[0]) == ids.index("AGS-AWS-016") + 1
    assert {r.from_stage for r in foundation.RULES} == {Stage.FOUNDATION}


def test_a_pilot_stack_is_not_judged_by_them() -> None:
    graph = ResourceGraph(stack=STACK, project="agentstage", resources=firewalled(associated=False))
    assert evaluate(graph, StackContext(Stage.PILOT, 30, (), "fixture"), foundation.RULES) == []


# --- WAF ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("acl_change", "expected"),
    [
        ({"rules": []}, "has no rules: it allows every request"),
        ({"rules": None, "ruleJson": json.dumps([{"name": "common"}])}, None),
        ({"rules": None, "ruleJson": "[]"}, "has no rules"),
        ({"rules": None, "ruleJson": UNKNOWN}, "cannot be reviewed"),
        ({"defaultAction": {}}, "neither allow nor block"),
        ({"defaultAction": {"block": {}}}, None),
    ],
)
def test_the_web_acl_needs_a_default_action_and_rules(
    acl_change: dict[str, Any], expected: str | None
) -> None:
    finding = _judge("AGS-AWS-017", STAGE, firewalled(acl_change))
    if expected is None:
        assert finding.outcome is Outcome.PASSED, finding.message
    else:
        assert finding.outcome is Outcome.FAILED and expected in finding.message


def test_a_web_acl_outside_the_stack_does_not_count() -> None:
    api, stage, _acl, bound = firewalled()
    assert "no web ACL of this stack" in _message("AGS-AWS-017", STAGE, [api, stage, bound])


def test_an_association_with_another_stage_does_not_protect_this_one() -> None:
    api = rest_api()
    live = rest_stage(api)
    test_arn = live.arn.replace("/stages/live", "/stages/test")
    test = rest_stage(api, "test", test_arn)
    acl = web_acl()
    message = _message("AGS-AWS-017", STAGE, [api, live, test, acl, association(test, acl, test_arn)])
    assert "no wafv2 WebAclAssociation names stage 'live'" in message


def test_an_association_known_after_deployment_counts_through_its_dependency() -> None:
    api, stage, acl, bound = firewalled()
    computed = res(
        bound.type, bound.name, {**bound.inputs, "resourceArn": UNKNOWN}, dependencies=(stage.urn,)
    )
    assert _passes("AGS-AWS-017", STAGE, [api, stage, acl, computed])


def test_a_private_api_needs_no_firewall() -> None:
    api = rest_api("PRIVATE")
    assert _passes("AGS-AWS-017", STAGE, [api, rest_stage(api)])


# --- throttling ---------------------------------------------------------------------------------------


def test_a_stage_without_catch_all_method_settings_fails() -> None:
    api = rest_api()
    stage = rest_stage(api)
    assert "no MethodSettings with methodPath '*/*'" in _message("AGS-AWS-018", STAGE, [api, stage])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"throttlingBurstLimit": None}, "settings.throttlingBurstLimit is unset"),
        ({"throttlingRateLimit": 0}, "settings.throttlingRateLimit is 0"),
        ({"throttlingRateLimit": True}, "settings.throttlingRateLimit is True"),
        ({"dataTraceEnabled": True}, "settings.dataTraceEnabled is true"),
    ],
)
def test_the_catch_all_settings_throttle_and_trace_no_bodies(change: dict[str, Any], expected: str) -> None:
    assert expected in _message("AGS-AWS-018", STAGE, throttled(**change))


def test_every_method_override_throttles_and_traces_no_bodies() -> None:
    api, stage, catch_all = throttled()
    override = method_settings(api, stage, "chat/POST", throttlingRateLimit=None, dataTraceEnabled=True)
    message = _message("AGS-AWS-018", STAGE, [api, stage, catch_all, override])
    assert "MethodSettings gateway-settings-chat-post ('chat/POST')" in message
    assert "throttlingRateLimit is unset" in message and "dataTraceEnabled is true" in message
    tighter = method_settings(api, stage, "chat/POST", throttlingRateLimit=5, throttlingBurstLimit=10)
    assert _passes("AGS-AWS-018", STAGE, [api, stage, catch_all, tighter])


def test_settings_of_another_stage_or_api_do_not_count() -> None:
    api = rest_api()
    live, test = rest_stage(api), rest_stage(api, "test")
    other_api = res(api.type, "other-api", api.inputs)
    resources = [api, other_api, live, test, method_settings(api, test), method_settings(other_api, live)]
    assert "no MethodSettings with methodPath '*/*'" in _message("AGS-AWS-018", STAGE, resources)


def test_a_stage_name_known_after_deployment_matches_through_the_dependency() -> None:
    api, stage, settings = throttled()
    computed = res(
        settings.type,
        settings.name,
        {**settings.inputs, "stageName": UNKNOWN},
        dependencies=settings.dependencies,
    )
    assert _passes("AGS-AWS-018", STAGE, [api, stage, computed])


def _http_stage(**settings: Any) -> Resource:
    return res(
        "aws:apigatewayv2/stage:Stage",
        "api-stage",
        {"apiId": "hpgan5wklj", "name": "$default", "autoDeploy": True, **settings},
    )


@pytest.mark.parametrize(
    ("settings", "passes"),
    [
        ({"defaultRouteSettings": {"throttlingRateLimit": 50, "throttlingBurstLimit": 100}}, True),
        ({"defaultRouteSettings": {"detailedMetricsEnabled": True}}, False),
        ({}, False),
        (
            {
                "defaultRouteSettings": {"throttlingRateLimit": 50, "throttlingBurstLimit": 100},
                "routeSettings": [{"routeKey": "POST /chat", "throttlingRateLimit": 5}],
            },
            True,
        ),
        (
            {
                "defaultRouteSettings": {"throttlingRateLimit": 50, "throttlingBurstLimit": 100},
                "routeSettings": [{"routeKey": "POST /chat", "throttlingBurstLimit": -1}],
            },
            False,
        ),
        (
            {
                "defaultRouteSettings": {
                    "throttlingRateLimit": 50,
                    "throttlingBurstLimit": 100,
                    "dataTraceEnabled": True,
                }
            },
            False,
        ),
    ],
)
def test_http_api_stages_throttle_their_routes(settings: dict[str, Any], passes: bool) -> None:
    assert _passes("AGS-AWS-018", "api-stage", [_http_stage(**settings)]) is passes


# --- method authorization -----------------------------------------------------------------------------


def test_aws_iam_methods_pass_without_an_authorizer() -> None:
    api = rest_api()
    assert _passes("AGS-AWS-019", "gateway-proxy-any", [api, method(api, None, authorization="AWS_IAM")])


def test_a_custom_method_needs_an_authorizer_of_the_stack() -> None:
    api = rest_api()
    orphan = method(api, None, authorization="CUSTOM", authorizerId="abc123")
    assert "no authorizer of this stack" in _message("AGS-AWS-019", "gateway-proxy-any", [api, orphan])


@pytest.mark.parametrize(
    ("authorization", "authorizer_change", "passes"),
    [
        ("CUSTOM", {"type": "REQUEST"}, True),
        ("CUSTOM", {"type": None}, True),  # API Gateway's default type is TOKEN
        ("CUSTOM", {"authorizerUri": None}, False),
        ("CUSTOM", {"type": "COGNITO_USER_POOLS"}, False),
        (
            "COGNITO_USER_POOLS",
            {
                "type": "COGNITO_USER_POOLS",
                "authorizerUri": None,
                "providerArns": [f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{REGION}_EXAMPLE00"],
            },
            True,
        ),
        ("COGNITO_USER_POOLS", {"type": "COGNITO_USER_POOLS", "providerArns": []}, False),
        ("COGNITO_USER_POOLS", {}, False),  # a Lambda authorizer checks no user pool
    ],
)
def test_the_authorizer_matches_the_authorization(
    authorization: str, authorizer_change: dict[str, Any], passes: bool
) -> None:
    api = rest_api()
    auth = authorizer(api, **authorizer_change)
    resources = [api, auth, method(api, auth, authorization=authorization)]
    assert _passes("AGS-AWS-019", "gateway-proxy-any", resources) is passes


def _preflight(integration_type: str) -> list[Resource]:
    api = rest_api()
    options = method(api, None, "OPTIONS", authorization="NONE", apiKeyRequired=False)
    answer = res(
        INTEGRATION,
        "gateway-proxy-options-answer",
        {
            "restApi": api.mock_id,
            "resourceId": PROXY_RESOURCE,
            "httpMethod": "OPTIONS",
            "type": integration_type,
        },
        dependencies=(api.urn, options.urn),
    )
    return [api, options, answer]


def test_a_cors_preflight_answered_by_a_mock_integration_needs_no_authorization() -> None:
    assert _passes("AGS-AWS-019", "gateway-proxy-options", _preflight("MOCK"))
    assert "anyone on the internet" in _message(
        "AGS-AWS-019", "gateway-proxy-options", _preflight("AWS_PROXY")
    )
    api, options, _answer = _preflight("MOCK")
    assert not _passes("AGS-AWS-019", "gateway-proxy-options", [api, options])


def test_the_mock_exemption_is_for_options_only() -> None:
    api, _options, answer = _preflight("MOCK")
    get = method(api, None, "GET", authorization="NONE")
    mocked_get = res(INTEGRATION, "get-answer", {**answer.inputs, "httpMethod": "GET"})
    assert not _passes("AGS-AWS-019", "gateway-proxy-get", [api, get, mocked_get])


# --- dead-letter queues -------------------------------------------------------------------------------

TASKS = "bus-tasks-research"
DLQ = "bus-tasks-research-dlq"


@pytest.mark.parametrize(
    ("count", "passes"),
    [(1, True), ("5", True), (20, True), (0, False), (21, False), (True, False), (None, False)],
)
def test_max_receive_count_is_between_1_and_20(count: Any, passes: bool) -> None:
    dlq = dead_letter()
    resources = [dlq, task_queue(dlq, redrivePolicy=redrive_policy(dlq.arn, count))]
    assert _passes("AGS-AWS-020", TASKS, resources) is passes


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (redrive_policy(queue_arn("someone-elses-dlq")), "is no other queue of this stack"),
        (redrive_policy(queue_arn("ags-staging-tasks-research")), "is no other queue of this stack"),
        (json.dumps({"maxReceiveCount": 5}), "deadLetterTargetArn unset"),
        ("{not json", "not a JSON redrive policy"),
    ],
)
def test_the_dead_letter_target_is_another_queue_of_the_stack(policy: str, expected: str) -> None:
    dlq = dead_letter()
    assert expected in _message("AGS-AWS-020", TASKS, [dlq, task_queue(dlq, redrivePolicy=policy)])


def test_a_redrive_policy_known_after_deployment_counts_when_computed_from_a_queue() -> None:
    dlq = dead_letter()
    assert _passes("AGS-AWS-020", TASKS, [dlq, task_queue(dlq, redrivePolicy=UNKNOWN)])
    detached = queue("ags-staging-tasks-research", TASKS, redrivePolicy=UNKNOWN)
    assert not _passes("AGS-AWS-020", TASKS, [dlq, detached])


@pytest.mark.parametrize(("retention", "passes"), [(MAX_RETENTION, True), (345_600, False), (None, False)])
def test_a_dead_letter_queue_keeps_failed_tasks_14_days(retention: int | None, passes: bool) -> None:
    dlq = dead_letter(messageRetentionSeconds=retention)
    finding = _judge("AGS-AWS-020", DLQ, [dlq, task_queue(dlq)])
    assert (finding.outcome is Outcome.PASSED) is passes
    assert "the dead-letter queue of bus-tasks-research" in finding.message


def test_a_queue_is_a_dead_letter_queue_only_when_a_queue_targets_it() -> None:
    lonely = dead_letter()
    assert "has no redrivePolicy" in _message("AGS-AWS-020", DLQ, [lonely])


# --- queue encryption (AGS-AWS-007) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_id", "customer_managed"),
    [
        (KEY_ARN, True),
        ("alias/aws/sqs", False),
        (None, False),
        (f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/agents", True),
    ],
)
def test_queues_use_a_customer_managed_key(key_id: str | None, customer_managed: bool) -> None:
    tasks = queue(
        "ags-staging-tasks-research", TASKS, kmsMasterKeyId=key_id, sqsManagedSseEnabled=key_id is None
    )
    graph = ResourceGraph(stack=STACK, project="agentstage", resources=[key(), tasks])
    (finding,) = evaluate(graph, StackContext(Stage.PILOT, 30, (), "fixture"), [rule_by_id("AGS-AWS-007")])
    assert (finding.outcome is Outcome.PASSED) is customer_managed, finding.message


# --- the vector store ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"storageEncrypted": None}, "storageEncrypted is unset"),
        ({"iamDatabaseAuthenticationEnabled": False}, "iamDatabaseAuthenticationEnabled is False"),
        ({"manageMasterUserPassword": None}, "manageMasterUserPassword is unset"),
        ({"manageMasterUserPassword": None, "masterPassword": SECRET}, "masterPassword is set"),
        ({"masterPasswordWo": SECRET}, "masterPasswordWo is set"),
    ],
)
def test_the_cluster_is_encrypted_and_admits_iam_authentication_only(
    change: dict[str, Any], expected: str
) -> None:
    finding = _judge("AGS-AWS-021", "vectors", [res(CLUSTER, "vectors", {**CLUSTER_INPUTS, **change})])
    assert finding.outcome is Outcome.FAILED and expected in finding.message
    assert SECRET not in finding.message


@pytest.mark.parametrize(("value", "passes"), [(False, True), (True, False), (None, False), (UNKNOWN, False)])
def test_instances_are_explicitly_private(value: Any, passes: bool) -> None:
    inputs = {**INSTANCE_INPUTS, "publiclyAccessible": value}
    assert _passes("AGS-AWS-022", "writer", [res(CLUSTER_INSTANCE, "writer", inputs)]) is passes
    instance = res(
        "aws:rds/instance:Instance", "writer", {"instanceClass": "db.t4g.micro", "publiclyAccessible": value}
    )
    assert _passes("AGS-AWS-022", "writer", [instance]) is passes


# --- one receiver per queue ---------------------------------------------------------------------------

ACCOUNT_QUEUES = f"arn:aws:sqs:{REGION}:{ACCOUNT}:*"


@pytest.mark.parametrize(
    "second_receiver",
    [
        statement(["sqs:*"], RESEARCH_QUEUE),
        statement(["sqs:Receive*"], RESEARCH_QUEUE),
        statement(["*"], "*"),
        statement(["sqs:ReceiveMessage"], ACCOUNT_QUEUES),
        statement(["sqs:ReceiveMessage"], "arn:aws:sqs:*:*:ags-staging-tasks-*"),
        {"Effect": "Allow", "NotAction": ["sqs:SendMessage"], "Resource": RESEARCH_QUEUE},
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage"], "NotResource": WRITER_QUEUE},
    ],
    ids=[
        "sqs-star",
        "receive-star",
        "star-on-star",
        "account-queues",
        "region-wildcard",
        "not-action",
        "not-resource",
    ],
)
def test_a_wildcard_second_receiver_fails_the_owner_and_itself(second_receiver: dict[str, Any]) -> None:
    resources = agents(("writer", second_receiver))
    assert "and so may role ags-staging-writer" in _message("AGS-AWS-023", "research-receive", resources)
    assert not _passes("AGS-AWS-023", "writer-extra-0", resources)


@pytest.mark.parametrize(
    ("granted", "expected"),
    [
        (
            statement(["sqs:ReceiveMessage"], ACCOUNT_QUEUES),
            "ags-staging-tasks-research, ags-staging-tasks-writer",
        ),
        (statement(["sqs:*"], "*"), "every queue it matches"),
        (
            statement(["sqs:ReceiveMessage"], f"arn:aws:sqs:{REGION}:{ACCOUNT}:later-*"),
            "none of this stack yet",
        ),
        (statement(["sqs:ReceiveMessage"], UNKNOWN), "cannot be reviewed before deployment"),
    ],
)
def test_a_wildcard_or_unreadable_receive_fails_even_alone(granted: dict[str, Any], expected: str) -> None:
    lone = role("research")
    queues = [queue("ags-staging-tasks-research"), queue("ags-staging-tasks-writer")]
    resources = [lone, *queues, grant(lone, "research-receive", granted)]
    assert expected in _message("AGS-AWS-023", "research-receive", resources)


def test_sending_to_a_shared_queue_it_receives_from_is_named() -> None:
    resources = agents(("writer", receives(RESEARCH_QUEUE)), ("writer", sends(RESEARCH_QUEUE)))
    message = _message("AGS-AWS-023", "writer-extra-0", resources)
    assert (
        "role ags-staging-writer receives from ags-staging-tasks-research, and so may role ags-staging-research"
        in message
    )
    assert "it sends to that queue too" in message


def test_an_agent_may_send_to_its_own_queue_when_it_is_the_only_receiver() -> None:
    assert _passes("AGS-AWS-023", "research-receive", agents(("research", sends(RESEARCH_QUEUE))))


def test_senders_deny_statements_and_other_services_do_not_receive() -> None:
    resources = agents(
        ("writer", {"Effect": "Deny", "Action": "sqs:*", "Resource": RESEARCH_QUEUE}),
        ("writer", statement(["*"], f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ags-staging-state")),
    )
    assert _passes("AGS-AWS-023", "research-receive", resources)
    finding = _judge("AGS-AWS-023", "orchestrator-send", resources)
    assert finding.outcome is Outcome.PASSED and finding.message == "grants no sqs:ReceiveMessage"


def test_one_role_may_receive_through_several_policies() -> None:
    resources = agents(("research", receives(RESEARCH_QUEUE)))
    assert _passes("AGS-AWS-023", "research-receive", resources)


def test_a_role_s_inline_policy_counts_as_a_receiver() -> None:
    inline = {"name": "receive", "policy": json.dumps({"Statement": [receives(RESEARCH_QUEUE)]})}
    intruder = res(
        "aws:iam/role:Role", "intruder-role", {"name": "ags-staging-intruder", "inlinePolicies": [inline]}
    )
    resources = [*agents(), intruder]
    assert "and so may role ags-staging-intruder" in _message("AGS-AWS-023", "research-receive", resources)
    assert not _passes("AGS-AWS-023", "intruder-role", resources)


def test_policies_name_their_role_by_id_or_reference_too() -> None:
    research, writer = role("research"), role("writer")
    by_id = res(
        ROLE_POLICY,
        "research-receive",
        {"role": research.mock_id, "policy": json.dumps({"Statement": [receives(RESEARCH_QUEUE)]})},
    )
    computed = res(
        ROLE_POLICY,
        "research-extra",
        {"role": UNKNOWN, "policy": json.dumps({"Statement": [receives(RESEARCH_QUEUE)]})},
        dependencies=(research.urn,),
    )
    assert _passes("AGS-AWS-023", "research-receive", [research, writer, by_id, computed])


def test_an_unreadable_policy_document_fails() -> None:
    owner = role("research")
    unreadable = res(ROLE_POLICY, "research-receive", {"role": owner.get("name"), "policy": UNKNOWN})
    assert "not a policy document" in _message("AGS-AWS-023", "research-receive", [owner, unreadable])


def test_the_dead_letter_send_of_the_queues_component_is_no_receive() -> None:
    """TaskQueues.grant_receive lets the consumer send to its own dead-letter queue, nothing more."""
    dlq = queue_arn("ags-staging-tasks-research-dlq")
    resources = agents(("research", statement(SEND_ACTIONS, dlq)), ("writer", statement(SEND_ACTIONS, dlq)))
    assert _passes("AGS-AWS-023", "research-receive", resources)
    assert _passes("AGS-AWS-023", "writer-receive", resources)
