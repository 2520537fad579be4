"""Fixtures for the AWS foundation rules: the REST API front door, task queues and the vector store, as
pulumi-aws inputs the way components/aws renders them (ARNs in the AWS mock profile's account)."""

from __future__ import annotations

import json
from typing import Any

from core.graph import Resource
from policies.rules import Stage
from rule_cases.aws import ACCOUNT, KEY_ARN, REGION, ROLE, ROLE_POLICY, statement
from rule_cases.base import Case, flip, ref, res

REST_API = "aws:apigateway/restApi:RestApi"
REST_STAGE = "aws:apigateway/stage:Stage"
METHOD = "aws:apigateway/method:Method"
METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
AUTHORIZER = "aws:apigateway/authorizer:Authorizer"
INTEGRATION = "aws:apigateway/integration:Integration"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
QUEUE = "aws:sqs/queue:Queue"
CLUSTER = "aws:rds/cluster:Cluster"
CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"

API_ID = "k7ex2mq4vd"
STAGE_ARN = f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}/stages/live"
ACL_ARN = f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/ags-staging-gateway/5f3a9c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b"
AUTHORIZER_URI = (
    f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-staging-authorizer/invocations"
)
PROXY_RESOURCE = "/agentstage-plan/aws:apigateway/resource:Resource/gateway-proxy"
MAX_RETENTION = 1_209_600


# --- the REST API --------------------------------------------------------------------------------------


def rest_api(types: str = "REGIONAL") -> Resource:
    return res(
        REST_API, "gateway-api", {"name": "ags-staging-gateway", "endpointConfiguration": {"types": types}}
    )


def rest_stage(api: Resource, name: str = "live", arn: str = STAGE_ARN) -> Resource:
    inputs = {"restApi": ref(api), "stageName": name, "xrayTracingEnabled": True}
    return res(REST_STAGE, f"gateway-stage-{name}", inputs, dependencies=(api.urn,), arn=arn)


WAF_RULES = [
    {
        "name": "common",
        "priority": 0,
        "overrideAction": {"none": {}},
        "statement": {
            "managedRuleGroupStatement": {"vendorName": "AWS", "name": "AWSManagedRulesCommonRuleSet"}
        },
        "visibilityConfig": {
            "cloudwatchMetricsEnabled": True,
            "metricName": "common",
            "sampledRequestsEnabled": False,
        },
    },
    {
        "name": "rate-per-address",
        "priority": 1,
        "action": {"block": {}},
        "statement": {"rateBasedStatement": {"limit": 600, "aggregateKeyType": "IP"}},
        "visibilityConfig": {
            "cloudwatchMetricsEnabled": True,
            "metricName": "rate",
            "sampledRequestsEnabled": False,
        },
    },
]


def web_acl(**change: Any) -> Resource:
    inputs = {
        "name": "ags-staging-gateway",
        "scope": "REGIONAL",
        "defaultAction": {"allow": {}},
        "rules": WAF_RULES,
    }
    return res(WEB_ACL, "gateway-waf-acl", {**inputs, **change}, arn=ACL_ARN)


def association(stage: Resource, acl: Resource, resource_arn: str = STAGE_ARN) -> Resource:
    return res(
        ASSOCIATION,
        "gateway-waf-stage",
        {"resourceArn": resource_arn, "webAclArn": ACL_ARN},
        dependencies=(stage.urn, acl.urn),
    )


def firewalled(acl_change: dict[str, Any] | None = None, *, associated: bool = True) -> list[Resource]:
    api = rest_api()
    stage = rest_stage(api)
    acl = web_acl(**(acl_change or {}))
    return [api, stage, acl, *([association(stage, acl)] if associated else [])]


SETTINGS = {
    "metricsEnabled": True,
    "loggingLevel": "ERROR",
    "dataTraceEnabled": False,
    "throttlingRateLimit": 50,
    "throttlingBurstLimit": 100,
}


def method_settings(api: Resource, stage: Resource, path: str = "*/*", **change: Any) -> Resource:
    inputs = {
        "restApi": ref(api),
        "stageName": stage.get("stageName"),
        "methodPath": path,
        "settings": {**SETTINGS, **change},
    }
    slug = "all" if path == "*/*" else path.replace("/", "-").strip("-").lower()
    return res(METHOD_SETTINGS, f"gateway-settings-{slug}", inputs, dependencies=(api.urn, stage.urn))


def throttled(**change: Any) -> list[Resource]:
    api = rest_api()
    stage = rest_stage(api)
    return [api, stage, method_settings(api, stage, **change)]


def authorizer(api: Resource, **change: Any) -> Resource:
    inputs = {
        "restApi": ref(api),
        "name": "bearer-token",
        "type": "TOKEN",
        "authorizerUri": AUTHORIZER_URI,
        "identitySource": "method.request.header.Authorization",
    }
    return res(AUTHORIZER, "gateway-authorizer", {**inputs, **change}, dependencies=(api.urn,))


def method(api: Resource, auth: Resource | None, verb: str = "ANY", **change: Any) -> Resource:
    inputs: dict[str, Any] = {
        "restApi": ref(api),
        "resourceId": PROXY_RESOURCE,
        "httpMethod": verb,
        "apiKeyRequired": True,
    }
    inputs.update({"authorization": "CUSTOM", "authorizerId": ref(auth)} if auth else {})
    inputs.update(change)
    dependencies = (api.urn, auth.urn) if auth else (api.urn,)
    return res(METHOD, f"gateway-proxy-{verb.lower()}", inputs, dependencies=dependencies)


def authorized(**change: Any) -> list[Resource]:
    api = rest_api()
    auth = authorizer(api)
    return [api, auth, method(api, auth, **change)]


# --- queues --------------------------------------------------------------------------------------------


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def queue(
    name: str, logical: str | None = None, *, dependencies: tuple[str, ...] = (), **change: Any
) -> Resource:
    inputs = {"name": name, "kmsMasterKeyId": KEY_ARN, "kmsDataKeyReusePeriodSeconds": 300, **change}
    return res(QUEUE, logical or name, inputs, dependencies=dependencies, arn=queue_arn(name))


def redrive_policy(target: str, max_receive_count: Any = 5) -> str:
    return json.dumps({"deadLetterTargetArn": target, "maxReceiveCount": max_receive_count})


def dead_letter(**change: Any) -> Resource:
    inputs = {"messageRetentionSeconds": MAX_RETENTION, **change}
    return queue("ags-staging-tasks-research-dlq", "bus-tasks-research-dlq", **inputs)


def task_queue(dlq: Resource, **change: Any) -> Resource:
    inputs = {"visibilityTimeoutSeconds": 540, "redrivePolicy": redrive_policy(dlq.arn or ""), **change}
    return queue("ags-staging-tasks-research", "bus-tasks-research", dependencies=(dlq.urn,), **inputs)


def redriven(**change: Any) -> list[Resource]:
    """A task queue and its dead-letter queue; ``change`` applies to the task queue."""
    dlq = dead_letter()
    return [dlq, task_queue(dlq, **change)]


# --- who may receive -----------------------------------------------------------------------------------

RESEARCH_QUEUE = queue_arn("ags-staging-tasks-research")
WRITER_QUEUE = queue_arn("ags-staging-tasks-writer")
RECEIVE_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
]
SEND_ACTIONS = ["sqs:SendMessage", "sqs:GetQueueUrl"]


def role(agent: str) -> Resource:
    return res(ROLE, f"{agent}-role", {"name": f"ags-staging-{agent}"})


def grant(owner: Resource, name: str, *statements: dict[str, Any]) -> Resource:
    """A role policy as ExecutionRole.allow renders it: ``role`` is the role's id (its name)."""
    document = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    inputs = {"role": owner.get("name"), "name": name, "policy": document}
    return res(ROLE_POLICY, name, inputs, dependencies=(owner.urn,))


def receives(queue_arn_: Any) -> dict[str, Any]:
    return statement(RECEIVE_ACTIONS, queue_arn_, Sid="ReceiveOwnQueue")


def sends(*queue_arns: str) -> dict[str, Any]:
    return statement(SEND_ACTIONS, list(queue_arns), Sid="SendTasks")


def agents(*extra: tuple[str, dict[str, Any]]) -> list[Resource]:
    """Two agents on their own queues and an orchestrator sending to both; ``extra`` adds (agent, statement)
    grants - a second receiver, a wildcard - to the agent of that name."""
    roles = {name: role(name) for name in ("orchestrator", "research", "writer")}
    queues = [
        queue("ags-staging-tasks-research", "bus-tasks-research"),
        queue("ags-staging-tasks-writer", "bus-tasks-writer"),
    ]
    policies = [
        grant(roles["research"], "research-receive", receives(RESEARCH_QUEUE)),
        grant(roles["writer"], "writer-receive", receives(WRITER_QUEUE)),
        grant(roles["orchestrator"], "orchestrator-send", sends(RESEARCH_QUEUE, WRITER_QUEUE)),
        *(
            grant(roles[agent], f"{agent}-extra-{i}", extra_statement)
            for i, (agent, extra_statement) in enumerate(extra)
        ),
    ]
    return [*roles.values(), *queues, *policies]


# --- the vector store ----------------------------------------------------------------------------------

CLUSTER_INPUTS = {
    "clusterIdentifier": "ags-staging-vectors",
    "engine": "aurora-postgresql",
    "engineMode": "provisioned",
    "databaseName": "knowledge",
    "masterUsername": "agentstage",
    "storageEncrypted": True,
    "kmsKeyId": KEY_ARN,
    "iamDatabaseAuthenticationEnabled": True,
    "manageMasterUserPassword": True,
    "serverlessv2ScalingConfiguration": {"minCapacity": 0.5, "maxCapacity": 4},
}
INSTANCE_INPUTS = {
    "clusterIdentifier": "ags-staging-vectors",
    "instanceClass": "db.serverless",
    "engine": "aurora-postgresql",
    "publiclyAccessible": False,
}

FOUNDATION = Stage.FOUNDATION

CASES = {
    "AGS-AWS-017": Case(
        target="gateway-stage-live",
        passing=firewalled,
        failing=lambda: firewalled(associated=False),
        stage=FOUNDATION,
    ),
    "AGS-AWS-018": Case(
        target="gateway-stage-live",
        passing=throttled,
        failing=lambda: throttled(throttlingRateLimit=-1, dataTraceEnabled=True),
        stage=FOUNDATION,
    ),
    "AGS-AWS-019": Case(
        target="gateway-proxy-any",
        passing=authorized,
        failing=lambda: authorized(authorization="NONE", authorizerId=None),
        stage=FOUNDATION,
    ),
    "AGS-AWS-020": Case(
        target="bus-tasks-research",
        passing=redriven,
        failing=lambda: [dead_letter(), queue("ags-staging-tasks-research", "bus-tasks-research")],
        stage=FOUNDATION,
    ),
    "AGS-AWS-021": flip(
        CLUSTER,
        "knowledge-vectors",
        CLUSTER_INPUTS,
        {"iamDatabaseAuthenticationEnabled": False},
        stage=FOUNDATION,
    ),
    "AGS-AWS-022": flip(
        CLUSTER_INSTANCE,
        "knowledge-vectors-writer",
        INSTANCE_INPUTS,
        {"publiclyAccessible": None},
        stage=FOUNDATION,
    ),
    "AGS-AWS-023": Case(
        target="research-receive",
        passing=agents,
        failing=lambda: agents(("writer", receives(RESEARCH_QUEUE))),
        stage=FOUNDATION,
    ),
}
