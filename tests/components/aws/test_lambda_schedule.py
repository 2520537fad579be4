"""A function invoked on a schedule: one EventBridge rule, its target with the constant event, and the one
permission that lets that rule - no other rule, account or service - invoke the function (its warm alias
where it has one)."""

from __future__ import annotations

import json
from typing import Any

from components.aws.context import AwsContext
from components.aws.role import ExecutionRole
from components.aws.serverless_agent import LambdaAgent
from core.graph import ResourceGraph
from tests.components.aws.test_aws_network import ACCOUNT, REGION, TAGS, agent_args, build, only

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PERMISSION = "aws:lambda/permission:Permission"
EVENT = {"agentstage": "sweep"}


def scheduled(**extra: Any) -> ResourceGraph:
    def factory(context: AwsContext) -> None:
        agent = LambdaAgent("worker", context, agent_args(ExecutionRole("worker", context), **extra))
        agent.schedule("sweep", "rate(1 minute)", EVENT)

    return build(factory)


def test_the_rule_invokes_the_function_with_the_event_and_only_that_rule_may() -> None:
    graph = scheduled()
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-dev-worker"
    rule, target, permission = only(graph, RULE), only(graph, TARGET), only(graph, PERMISSION)
    assert (rule.name, target.name, permission.name) == (
        "worker-sweep",
        "worker-sweep-target",
        "worker-sweep-invoke",
    )
    assert rule.inputs["name"] == "ags-dev-worker-sweep", "named like the stack's other resources"
    assert (rule.inputs["scheduleExpression"], rule.inputs["tags"]) == ("rate(1 minute)", TAGS)
    assert (target.inputs["rule"], target.inputs["arn"], target.inputs["targetId"]) == (
        "ags-dev-worker-sweep",
        function,
        "sweep",
    )
    assert json.loads(target.inputs["input"]) == EVENT
    assert {k: v for k, v in permission.inputs.items() if k != "statementId"} == {
        "action": "lambda:InvokeFunction",
        "function": function,
        "principal": "events.amazonaws.com",
        "sourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ags-dev-worker-sweep",
    }
    assert permission.urn in target.dependencies, "the target invokes nothing before it may"


def test_a_warm_function_is_invoked_on_its_alias() -> None:
    """Scheduled invocations reach the provisioned instances callers reach, and the permission is the
    alias's: a permission on the unqualified function would not let the rule invoke the alias."""
    graph = scheduled(provisioned_concurrency=1)
    alias = only(graph, "aws:lambda/alias:Alias").mock_id
    assert alias and alias.endswith(":ags-dev-worker:live")
    assert only(graph, TARGET).inputs["arn"] == only(graph, PERMISSION).inputs["function"] == alias
