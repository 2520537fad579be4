"""The AWS foundation's services are priced from the price rows: REST API, WAF, SQS, S3, VPC endpoints, Aurora.

The graph is built by hand in the shape the foundation's components give it (inputs camelCase, ids and ARNs
as the mock profile makes them), so each figure can be followed from the resource to the row.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from core.graph import Resource, ResourceGraph
from cost import estimate
from cost.aws import AWAKE_ACUS, CHARS_PER_TOKEN, FREE, PRICERS, REST_METHOD_METRICS, SCHEDULED_SECONDS
from cost.model import CostLine, Estimate
from cost.prices import PRICES_DIR
from cost.usage import UsageProfile

ROWS = yaml.safe_load((PRICES_DIR / "aws.yaml").read_text(encoding="utf-8"))["prices"]
ACCOUNT = "123456789012"
REGION = "eu-west-1"
DAYS = 730 / 24
API_ID = "k3x9q2m7ab"
STAGE_ARN = f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}/stages/live"
ACL_ARN = f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/ags-gateway-stg/5f0c2a4e"
SUBNETS = ["subnet-0aa", "subnet-0bb", "subnet-0cc"]
CLUSTER_ID = "ags-knowledge-stg"
PROFILE = UsageProfile.model_validate(
    {
        "agents": {
            "*": {
                "requestsPerDay": 1000,
                "inputTokensPerRequest": 2000,
                "outputTokensPerRequest": 500,
                "embeddingTokensPerRequest": 100,
                "messagesPerRequest": 3,
            },
            "research": {"requestsPerDay": 100},
            "analyst": {"requestsPerDay": 50},
        },
        "storage": {"blobGbPerAccount": 2},
    }
)

FOUNDATION_TYPES = (
    "aws:apigateway/restApi:RestApi",
    "aws:apigateway/resource:Resource",
    "aws:apigateway/method:Method",
    "aws:apigateway/integration:Integration",
    "aws:apigateway/authorizer:Authorizer",
    "aws:apigateway/deployment:Deployment",
    "aws:apigateway/stage:Stage",
    "aws:apigateway/methodSettings:MethodSettings",
    "aws:apigateway/usagePlan:UsagePlan",
    "aws:apigateway/apiKey:ApiKey",
    "aws:apigateway/usagePlanKey:UsagePlanKey",
    "aws:apigateway/account:Account",
    "aws:wafv2/webAcl:WebAcl",
    "aws:wafv2/webAclAssociation:WebAclAssociation",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy",
    "aws:sqs/queue:Queue",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
    "aws:lambda/eventSourceMapping:EventSourceMapping",
    "aws:lambda/invocation:Invocation",
    "aws:lambda/permission:Permission",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketNotification:BucketNotification",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ec2/flowLog:FlowLog",
    "aws:rds/cluster:Cluster",
    "aws:rds/clusterInstance:ClusterInstance",
    "aws:rds/subnetGroup:SubnetGroup",
)


def row(meter: str, sku: str, region: str = REGION) -> float:
    """The price of a row of cost/prices/aws.yaml, read from the file itself."""
    [price] = [r["price"] for r in ROWS if (r["meter"], r["sku"], r["region"]) == (meter, sku, region)]
    return float(price)


def cloud(
    type_: str, logical: str, mock_id: str | None = None, arn: str | None = None, /, **inputs: Any
) -> Resource:
    """A cloud resource as the plan records it: its logical name, inputs, (mock) id and ARN."""
    return Resource(
        urn=f"urn:pulumi:stg::agentstage::{type_}::{logical}",
        type=type_,
        name=logical,
        custom=True,
        inputs=inputs,
        mock_id=mock_id or logical,
        arn=arn,
    )


def queue_name(agent: str) -> str:
    return f"ags-tasks-{agent}-stg"


def function(name: str, agents: list[dict[str, Any]], **settings: str) -> Resource:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-{name}-stg"
    variables = {
        "AGENTSTAGE_AGENTS": json.dumps(agents),
        "AGENTSTAGE_EMBEDDING_DIMENSIONS": "1024",
        **settings,
    }
    extra: dict[str, Any] = {}
    if settings.get("AGENTSTAGE_KNOWLEDGE_BACKEND") == "postgres":
        extra["vpcConfig"] = {"subnetIds": SUBNETS, "securityGroupIds": ["sg-0ff"]}
    return cloud(
        "aws:lambda/function:Function",
        f"{name}-function",
        arn,
        arn,
        name=f"ags-{name}-stg",
        environment={"variables": variables},
        **extra,
    )


def agent(name: str, *tools: str) -> dict[str, Any]:
    return {"name": name, "model": "eu.amazon.nova-lite-v1:0", "tools": list(tools)}


def queue(name: str) -> list[Resource]:
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
    return [
        cloud("aws:sqs/queue:Queue", name, url, arn, name=name, receiveWaitTimeSeconds=20),
        cloud("aws:sqs/queuePolicy:QueuePolicy", f"{name}-policy", url, queueUrl=url, policy="{}"),
    ]


def managed(rule: str, group: str, priority: int) -> dict[str, Any]:
    statement = {"managedRuleGroupStatement": {"vendorName": "AWS", "name": group}}
    return {"name": rule, "priority": priority, "overrideAction": {"none": {}}, "statement": statement}


RULES = [
    managed("IpReputation", "AWSManagedRulesAmazonIpReputationList", 10),
    managed("AnonymousIp", "AWSManagedRulesAnonymousIpList", 20),
    {"name": "RatePerIp", "priority": 30, "statement": {"rateBasedStatement": {"limit": 2000}}},
    {"name": "BodySize", "priority": 40, "statement": {"sizeConstraintStatement": {"size": 65536}}},
    managed("CoreRuleSet", "AWSManagedRulesCommonRuleSet", 50),
    managed("KnownBadInputs", "AWSManagedRulesKnownBadInputsRuleSet", 60),
    managed("SqlDatabase", "AWSManagedRulesSQLiRuleSet", 70),
]


def foundation() -> ResourceGraph:
    """The foundation's priced resources and a few of the free ones around them."""
    orchestrator_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-orchestrator-stg"
    invoke = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{orchestrator_arn}/invocations"
    queues = {name: queue_name(name) for name in ("orchestrator", "research", "analyst")}
    resources = [
        function(
            "orchestrator",
            [agent("orchestrator"), agent("research", "knowledge_search"), agent("analyst")],
            AGENTSTAGE_TASK_QUEUE=queues["orchestrator"],
            AGENTSTAGE_AGENT_QUEUES=json.dumps(
                {"research": queues["research"], "analyst": queues["analyst"]}
            ),
        ),
        function(
            "research",
            [agent("research", "knowledge_search")],
            AGENTSTAGE_TASK_QUEUE=queues["research"],
            AGENTSTAGE_KNOWLEDGE_BACKEND="postgres",
        ),
        function("analyst", [agent("analyst", "calculator")], AGENTSTAGE_TASK_QUEUE=queues["analyst"]),
        function("ingest", [], AGENTSTAGE_KNOWLEDGE_BACKEND="postgres"),
        cloud(
            "aws:apigateway/restApi:RestApi",
            "gateway-api",
            API_ID,
            f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}",
            name="ags-gateway-stg",
            apiKeySource="AUTHORIZER",
        ),
        *(
            resource
            for path in ("root", "proxy")
            for resource in (
                cloud(
                    "aws:apigateway/method:Method",
                    f"gateway-{path}-any",
                    restApi=API_ID,
                    resourceId=path,
                    httpMethod="ANY",
                ),
                cloud(
                    "aws:apigateway/integration:Integration",
                    f"gateway-{path}-backend",
                    restApi=API_ID,
                    resourceId=path,
                    type="AWS_PROXY",
                    uri=invoke,
                ),
            )
        ),
        cloud(
            "aws:apigateway/stage:Stage",
            "gateway-stage",
            f"ags-{API_ID}-live",
            STAGE_ARN,
            restApi=API_ID,
            stageName="live",
            xrayTracingEnabled=True,
        ),
        cloud(
            "aws:apigateway/methodSettings:MethodSettings",
            "gateway-settings",
            restApi=API_ID,
            stageName="live",
            methodPath="*/*",
            settings={"metricsEnabled": True, "cachingEnabled": False, "loggingLevel": "ERROR"},
        ),
        cloud("aws:apigateway/usagePlan:UsagePlan", "gateway-plan-default", name="ags-gateway-default-stg"),
        cloud(
            "aws:wafv2/webAcl:WebAcl",
            "waf-acl",
            "5f0c2a4e",
            ACL_ARN,
            name="ags-gateway-stg",
            scope="REGIONAL",
            rules=RULES,
            associationConfig={"requestBodies": [{"apiGateway": {"defaultSizeInspectionLimit": "KB_64"}}]},
        ),
        cloud(
            "aws:wafv2/webAclAssociation:WebAclAssociation",
            "waf-stage",
            webAclArn=ACL_ARN,
            resourceArn=STAGE_ARN,
        ),
        *(resource for name in (*queues.values(), "ags-knowledge-ingest-stg") for resource in queue(name)),
        *queue("ags-tasks-research-dlq-stg"),
        *(
            cloud(
                "aws:lambda/eventSourceMapping:EventSourceMapping",
                f"bus-{name}-trigger",
                eventSourceArn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queues[name]}",
                functionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-{name}-stg",
                batchSize=1,
            )
            for name in queues
        ),
        cloud("aws:s3/bucket:Bucket", "documents-bucket", bucket=f"ags-documents-stg-{ACCOUNT}"),
        cloud(
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            "network-bedrock-runtime",
            vpcEndpointType="Interface",
            serviceName=f"com.amazonaws.{REGION}.bedrock-runtime",
            subnetIds=SUBNETS,
            privateDnsEnabled=True,
        ),
        cloud(
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            "network-sqs",
            vpcEndpointType="Interface",
            serviceName=f"com.amazonaws.{REGION}.sqs",
            subnetIds=SUBNETS,
            privateDnsEnabled=True,
        ),
        cloud(
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            "network-s3",
            vpcEndpointType="Gateway",
            serviceName=f"com.amazonaws.{REGION}.s3",
            routeTableIds=["rtb-0aa", "rtb-0bb", "rtb-0cc"],
        ),
        cloud(
            "aws:rds/cluster:Cluster",
            "knowledge-cluster",
            CLUSTER_ID,
            f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{CLUSTER_ID}",
            clusterIdentifier=CLUSTER_ID,
            engine="aurora-postgresql",
            engineMode="provisioned",
            serverlessv2ScalingConfiguration={
                "minCapacity": 0,
                "maxCapacity": 4,
                "secondsUntilAutoPause": 900,
            },
        ),
        cloud(
            "aws:rds/clusterInstance:ClusterInstance",
            "knowledge-writer",
            clusterIdentifier=CLUSTER_ID,
            instanceClass="db.serverless",
            engine="aurora-postgresql",
        ),
        cloud("aws:rds/subnetGroup:SubnetGroup", "knowledge-subnets", name=CLUSTER_ID, subnetIds=SUBNETS),
        cloud(
            "aws:lambda/invocation:Invocation", "knowledge-bootstrap", functionName="ags-knowledge-boot-stg"
        ),
    ]
    return ResourceGraph(stack="foundation-aws-test", project="agentstage", resources=resources)


def edited(graph: ResourceGraph, name: str, **inputs: Any) -> ResourceGraph:
    """The graph with ``inputs`` of resource ``name`` replaced (``None`` removes one)."""
    resources = []
    for resource in graph.resources:
        if resource.name == name:
            merged = {key: value for key, value in {**resource.inputs, **inputs}.items() if value is not None}
            resource = dataclasses.replace(resource, inputs=merged)
        resources.append(resource)
    return ResourceGraph(graph.stack, graph.project, resources)


def added(graph: ResourceGraph, *resources: Resource) -> ResourceGraph:
    return ResourceGraph(graph.stack, graph.project, [*graph.resources, *resources])


def lines_of(result: Estimate, kind: str) -> dict[tuple[str, str], CostLine]:
    return {(line.resource, line.price.meter): line for line in result.lines if line.kind == kind}


def test_every_foundation_type_is_priced_or_free_for_a_reason() -> None:
    assert not set(PRICERS) & set(FREE)
    missing = [t for t in FOUNDATION_TYPES if t not in PRICERS and t not in FREE]
    assert missing == [], "add a pricer in cost/aws.py or a reason it is free"
    assert all(len(FREE[t]) > 10 for t in FOUNDATION_TYPES if t in FREE)


def test_every_regional_row_of_the_foundation_is_priced_in_both_regions() -> None:
    meters = {
        ("apigateway.rest-requests", "REST"),
        ("sqs.requests", "standard"),
        ("sqs.requests", "fifo"),
        ("s3.storage", "STANDARD"),
        ("vpc.interface-endpoint", "standard"),
        ("vpc.interface-endpoint.data", "standard"),
        ("aurora.serverless-v2", "aurora"),
        ("aurora.storage", "aurora"),
    }
    for meter, sku in meters:
        assert row(meter, sku, "eu-west-1") > 0 and row(meter, sku, "us-east-1") > 0, (meter, sku)
    for meter in ("waf.web-acl", "waf.rule", "waf.requests"):
        assert row(meter, "standard", "global") > 0


def test_fixed_cost_of_the_foundation_services_from_the_price_rows() -> None:
    result = estimate(foundation())
    assert result.unpriced == ()
    fixed = lines_of(result, "fixed")
    # WAF: the web ACL, and its 7 rules - 5 of them AWS managed rule groups, one rule each.
    acl = fixed[("waf-acl", "waf.web-acl")]
    assert acl.price.region == "global" and acl.monthly == row("waf.web-acl", "standard", "global") == 5.00
    rules = fixed[("waf-acl", "waf.rule")]
    assert rules.quantity == 7 and "5 of them managed rule groups" in rules.basis
    assert rules.monthly == 7 * row("waf.rule", "standard", "global")
    # Interface endpoints bill every hour in each of their 3 availability zones (one per subnet).
    for name in ("network-bedrock-runtime", "network-sqs"):
        endpoint = fixed[(name, "vpc.interface-endpoint")]
        assert endpoint.quantity == 3 * 730 and endpoint.basis == "3 AZs (one per subnet) x 730 h"
        assert endpoint.monthly == pytest.approx(3 * 730 * 0.011)
        assert endpoint.monthly == pytest.approx(3 * 730 * row("vpc.interface-endpoint", "standard"))
    # Aurora at minimum 0 ACUs: paused when idle, no fixed ACU-hours - and it says so.
    aurora = fixed[("knowledge-cluster", "aurora.serverless-v2")]
    assert aurora.quantity == 0 and aurora.monthly == 0
    assert "1 db.serverless instance at 0 ACUs: paused after 900 s without connections" in aurora.basis
    expected = 5.00 + 7 * 1.00 + 2 * 3 * 730 * row("vpc.interface-endpoint", "standard")
    assert result.fixed == pytest.approx(expected)
    assert result.fixed == pytest.approx(60.18)


def test_what_bills_only_with_use_says_what_it_bills_for() -> None:
    reasons = {free.resource: free.reason for free in estimate(foundation()).free}
    assert reasons["gateway-api"] == "no fixed cost: billed per million requests"
    assert "Lambda long-polls it, and its empty receives bill too" in reasons[queue_name("research")]
    assert "long-poll" not in reasons["ags-tasks-research-dlq-stg"]
    assert "long-poll its queue, also when it is empty" in reasons["bus-research-trigger"]
    assert "GB-month stored" in reasons["documents-bucket"]
    assert "detailed method metrics" in reasons["gateway-settings"]
    assert reasons["network-s3"].startswith("gateway endpoints (S3, DynamoDB) are free")
    assert reasons["knowledge-writer"].startswith("its ACUs bill on its cluster")
    assert "negligible" in reasons["knowledge-bootstrap"]


def test_an_interface_endpoint_in_another_region_and_zone_count() -> None:
    graph = edited(foundation(), "network-sqs", region="us-east-1", subnetIds=SUBNETS[:2])
    line = lines_of(estimate(graph), "fixed")[("network-sqs", "vpc.interface-endpoint")]
    assert (line.price.region, line.quantity) == ("us-east-1", 2 * 730)
    assert line.monthly == pytest.approx(2 * 730 * row("vpc.interface-endpoint", "standard", "us-east-1"))
    assert line.monthly == pytest.approx(14.60)


def test_an_endpoint_whose_zones_are_unknown_is_not_priced() -> None:
    graph = edited(foundation(), "network-sqs", subnetIds=None)
    [unpriced] = estimate(graph).unpriced
    assert unpriced.resource == "network-sqs" and unpriced.reason.startswith("subnetIds: unknown")


def test_aurora_minimum_capacity_is_fixed_for_each_serverless_instance() -> None:
    graph = edited(
        foundation(),
        "knowledge-cluster",
        serverlessv2ScalingConfiguration={"minCapacity": 0.5, "maxCapacity": 4},
    )
    reader = dataclasses.replace(
        graph.resources[[r.name for r in graph.resources].index("knowledge-writer")], name="knowledge-reader"
    )
    provisioned = cloud(
        "aws:rds/clusterInstance:ClusterInstance",
        "knowledge-reporting",
        clusterIdentifier=CLUSTER_ID,
        instanceClass="db.r6g.large",
    )
    elsewhere = cloud(
        "aws:rds/clusterInstance:ClusterInstance",
        "other-writer",
        clusterIdentifier="ags-other-stg",
        instanceClass="db.serverless",
    )
    result = estimate(added(graph, reader, provisioned, elsewhere))
    line = lines_of(result, "fixed")[("knowledge-cluster", "aurora.serverless-v2")]
    assert line.quantity == 2 * 0.5 * 730
    assert line.monthly == pytest.approx(2 * 0.5 * 730 * row("aurora.serverless-v2", "aurora"))
    assert line.monthly == pytest.approx(94.90)
    assert "2 db.serverless instances x 0.5 ACUs (minimum capacity) x 730 h" in line.basis
    [unpriced] = result.unpriced
    assert (
        unpriced.resource == "knowledge-reporting"
        and "db.r6g.large bills per instance-hour" in unpriced.reason
    )


def test_usage_of_the_foundation_services_follows_the_profile() -> None:
    result = estimate(foundation(), usage=PROFILE, usage_source="profile.yaml")
    usage = lines_of(result, "usage")
    # The API serves the orchestrator's requests only; research and analyst get theirs over the bus.
    requests = 1000 * DAYS
    api = usage[("gateway-api", "apigateway.rest-requests")]
    assert api.quantity == pytest.approx(requests / 1e6) and api.basis.endswith("requests of orchestrator")
    assert api.monthly == pytest.approx(requests / 1e6 * row("apigateway.rest-requests", "REST"))
    assert api.monthly == pytest.approx(0.1065, abs=1e-4)
    waf = usage[("waf-acl", "waf.requests")]
    assert waf.quantity == pytest.approx(requests / 1e6)
    assert waf.monthly == pytest.approx(requests / 1e6 * row("waf.requests", "standard", "global"))
    assert "bodies over 16 KB (inspected up to KB_64) bill extra" in waf.basis
    # Detailed method metrics: 2 methods x 5 metrics, in the hours with requests (nearly all of them).
    metrics = usage[("gateway-settings", "cloudwatch.custom-metric")]
    hours = 1 - math.exp(-requests / 730)
    assert metrics.quantity == pytest.approx(2 * len(REST_METHOD_METRICS) * hours)
    # Each agent's 3 bus operations a request, on the task queue of the function that runs it.
    for name, per_day in (("orchestrator", 1000), ("research", 100), ("analyst", 50)):
        line = usage[(queue_name(name), "sqs.requests")]
        assert line.quantity == pytest.approx(per_day * DAYS * 3 / 1e6)
        assert line.monthly == pytest.approx(per_day * DAYS * 3 / 1e6 * row("sqs.requests", "standard"))
    assert usage[("ags-knowledge-ingest-stg", "sqs.requests")].quantity == 0
    # The documents bucket holds storage.blobGbPerAccount.
    bucket = usage[("documents-bucket", "s3.storage")]
    assert bucket.quantity == 2 and bucket.monthly == pytest.approx(2 * row("s3.storage", "STANDARD"))
    # Model tokens of research (the only agent in the VPC) pass the bedrock-runtime endpoint.
    data = usage[("network-bedrock-runtime", "vpc.interface-endpoint.data")]
    assert data.quantity == pytest.approx(100 * DAYS * (2000 + 500 + 100) * CHARS_PER_TOKEN / 1e9)
    assert ("network-sqs", "vpc.interface-endpoint.data") not in usage
    assert result.total() == pytest.approx(result.fixed + result.usage)


def test_aurora_at_zero_is_awake_after_each_search_and_stores_the_index() -> None:
    result = estimate(foundation(), usage=PROFILE)
    usage = lines_of(result, "usage")
    # research's 100 requests a day, each keeping the instance up 900 s: awake 1 - e^(-rate x 900 s).
    searches = 100 * DAYS
    awake = 1 - math.exp(-searches * 900 / (730 * 3600))
    acus = usage[("knowledge-cluster", "aurora.serverless-v2")]
    assert acus.quantity == pytest.approx(AWAKE_ACUS * awake * 730)
    assert acus.monthly == pytest.approx(0.5 * awake * 730 * row("aurora.serverless-v2", "aurora"))
    assert "awake 65% of the month" in acus.basis and "a lower bound" in acus.basis
    # 2 GB of documents in 400-token chunks (60 overlapping), each with a 1024-dim vector stored twice.
    factor = (400 * 4 + 2 * 4 * 1024) / ((400 - 60) * 4)
    storage = usage[("knowledge-cluster", "aurora.storage")]
    assert storage.quantity == pytest.approx(2 * factor) and "x 7.2" in storage.basis
    assert storage.monthly == pytest.approx(2 * factor * row("aurora.storage", "aurora"))
    # I/O on Aurora Standard is listed as not priced, never counted as zero. (Model tokens are not priced
    # either: their prices come from a stack file, and this graph has none.)
    [unpriced] = [u for u in result.unpriced if u.type != "aws:lambda/function:Function"]
    assert unpriced.resource == "knowledge-cluster" and "I/O requests bill per million" in unpriced.reason


def test_a_busy_knowledge_index_never_pauses_and_its_chunking_is_read_from_the_functions() -> None:
    busy = UsageProfile.model_validate({"agents": {"*": {"requestsPerDay": 5000}}})
    graph = edited(
        foundation(),
        "ingest-function",
        environment={
            "variables": {
                "AGENTSTAGE_AGENTS": "[]",
                "AGENTSTAGE_KNOWLEDGE_BACKEND": "postgres",
                "AGENTSTAGE_KNOWLEDGE_CHUNK_TOKENS": "800",
                "AGENTSTAGE_KNOWLEDGE_OVERLAP_TOKENS": "0",
            }
        },
    )
    usage = lines_of(estimate(graph, usage=busy), "usage")
    assert usage[("knowledge-cluster", "aurora.serverless-v2")].quantity == pytest.approx(0.5 * 730)
    factor = (800 * 4 + 2 * 4 * 1024) / (800 * 4)
    assert usage[("knowledge-cluster", "aurora.storage")].quantity == 0  # the profile names no documents
    assert f"x {factor:.1f}" in usage[("knowledge-cluster", "aurora.storage")].basis


def test_io_optimized_storage_bills_no_io_and_needs_its_own_rows() -> None:
    graph = edited(foundation(), "knowledge-cluster", storageType="aurora-iopt1")
    [unpriced] = estimate(graph).unpriced
    assert unpriced.resource == "knowledge-cluster"
    assert "no price for aurora.serverless-v2 sku aurora-iopt1 in eu-west-1 (priced there: aurora)" in (
        unpriced.reason
    )
    assert not any("I/O" in u.reason for u in estimate(graph, usage=PROFILE).unpriced)


def test_waf_rule_groups_with_fees_of_their_own_and_unknown_rules_are_named() -> None:
    bots = managed("Bots", "AWSManagedRulesBotControlRuleSet", 80)
    vendor = {
        **managed("Vendor", "SomeVendorRules", 90),
        "statement": {"managedRuleGroupStatement": {"vendorName": "F5", "name": "SomeVendorRules"}},
    }
    result = estimate(edited(foundation(), "waf-acl", rules=[*RULES, bots, vendor]))
    assert lines_of(result, "fixed")[("waf-acl", "waf.rule")].quantity == 9
    assert sorted(u.reason.split(" adds")[0] for u in result.unpriced) == [
        "managed rule group AWS/AWSManagedRulesBotControlRuleSet",
        "managed rule group F5/SomeVendorRules",
    ]
    result = estimate(edited(foundation(), "waf-acl", rules=None, ruleJson="[]"))
    [unpriced] = result.unpriced
    assert unpriced.reason.startswith("rules: not a list the plan knows")
    assert ("waf-acl", "waf.web-acl") in lines_of(result, "fixed")


def test_a_fifo_queue_a_stage_cache_and_provisioned_pollers() -> None:
    graph = edited(foundation(), queue_name("analyst"), fifoQueue=True)
    line = lines_of(estimate(graph, usage=PROFILE), "usage")[(queue_name("analyst"), "sqs.requests")]
    assert line.price.sku == "fifo" and line.monthly == pytest.approx(
        line.quantity * row("sqs.requests", "fifo")
    )
    graph = edited(foundation(), "gateway-stage", cacheClusterEnabled=True, cacheClusterSize="1.6")
    [unpriced] = estimate(graph).unpriced
    assert unpriced.resource == "gateway-stage" and "1.6 GB cache cluster bills per hour" in unpriced.reason
    graph = edited(foundation(), "bus-research-trigger", provisionedPollerConfig={"minimumPollers": 2})
    [unpriced] = estimate(graph).unpriced
    assert unpriced.resource == "bus-research-trigger" and "provisioned mode" in unpriced.reason


def test_a_rest_api_without_a_function_of_the_plan_counts_every_agent() -> None:
    graph = ResourceGraph(
        "t",
        "agentstage",
        [r for r in foundation().resources if r.type != "aws:apigateway/integration:Integration"],
    )
    line = lines_of(estimate(graph, usage=PROFILE), "usage")[("gateway-api", "apigateway.rest-requests")]
    assert line.quantity == pytest.approx((1000 + 100 + 50) * DAYS / 1e6)
    assert "every agent" in line.basis


def test_another_engine_and_a_chunking_the_runtime_refuses_are_named() -> None:
    graph = edited(foundation(), "knowledge-cluster", engine="aurora-mysql")
    [unpriced] = estimate(graph).unpriced
    assert unpriced.reason == "engine aurora-mysql: the price table holds aurora-postgresql's rates only"
    graph = edited(
        foundation(),
        "ingest-function",
        environment={
            "variables": {
                "AGENTSTAGE_KNOWLEDGE_BACKEND": "postgres",
                "AGENTSTAGE_KNOWLEDGE_CHUNK_TOKENS": "100",
                "AGENTSTAGE_KNOWLEDGE_OVERLAP_TOKENS": "50",
            }
        },
    )
    reasons = [u.reason for u in estimate(graph, usage=PROFILE).unpriced if u.resource == "knowledge-cluster"]
    assert (
        "AGENTSTAGE_KNOWLEDGE_OVERLAP_TOKENS (50) must be less than half of AGENTSTAGE_KNOWLEDGE_CHUNK_TOKENS "
        "(100), as the runtime requires: fix the functions' settings" in reasons
    )


def test_the_foundation_stack_is_priced_from_its_own_plan(
    stack_graph: Callable[[str], ResourceGraph],
) -> None:
    graph = stack_graph("foundation-aws-staging")
    result = estimate(graph)
    assert result.unpriced == ()
    fixed = lines_of(result, "fixed")
    endpoints = [
        e
        for e in graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if e.inputs["vpcEndpointType"] == "Interface"
    ]
    assert endpoints
    for endpoint in endpoints:
        line = fixed[(endpoint.name, "vpc.interface-endpoint")]
        assert line.quantity == len(endpoint.inputs["subnetIds"]) * 730
    [acl] = graph.of_type("aws:wafv2/webAcl:WebAcl")
    assert fixed[(acl.name, "waf.rule")].quantity == len(acl.inputs["rules"])
    [cluster] = graph.of_type("aws:rds/cluster:Cluster")
    minimum = cluster.inputs["serverlessv2ScalingConfiguration"]["minCapacity"]
    instances = graph.of_type("aws:rds/clusterInstance:ClusterInstance")
    assert fixed[(cluster.name, "aurora.serverless-v2")].quantity == len(instances) * minimum * 730


EVENT_RULE, EVENT_TARGET = "aws:cloudwatch/eventRule:EventRule", "aws:cloudwatch/eventTarget:EventTarget"


def schedule(name: str, expression: str, target: str) -> list[Resource]:
    rule = f"ags-{name}-stg"
    arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"
    return [
        cloud(EVENT_RULE, name, rule, arn, name=rule, scheduleExpression=expression),
        cloud(EVENT_TARGET, f"{name}-target", f"{rule}-sweep", rule=rule, arn=target, targetId="sweep"),
    ]


def test_a_schedule_bills_its_invocations_of_its_function_idle_or_not() -> None:
    """Every 5 minutes: 730 h x 12 invocations a month, each busy SCHEDULED_SECONDS at the function's
    memory; the rule's own events are free, and its target bills nothing of its own."""
    analyst = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-analyst-stg"
    graph = added(foundation(), *schedule("analyst-sweep", "rate(5 minutes)", analyst))
    result = estimate(graph)
    fixed = lines_of(result, "fixed")
    invocations = 730 * 12
    requests = fixed[("analyst-sweep", "lambda.requests")]
    assert requests.quantity == invocations / 1e6 and requests.basis.startswith(
        "8,760 invocations of ags-analyst"
    )
    duration = fixed[("analyst-sweep", "lambda.duration")]
    assert duration.quantity == pytest.approx(invocations * SCHEDULED_SECONDS * 128 / 1024)
    assert duration.monthly == pytest.approx(duration.quantity * row("lambda.duration", "x86_64"))
    assert ("analyst-sweep", "xray.traces-recorded") not in fixed, "the function does not trace"
    assert "bill on the rule" in {f.resource: f.reason for f in result.free}["analyst-sweep-target"]


def test_a_schedule_that_is_not_a_rate_or_not_of_a_function_is_named() -> None:
    analyst = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-analyst-stg"
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name('analyst')}"
    graph = added(
        foundation(),
        *schedule("nightly", "cron(0 3 * * ? *)", analyst),
        *schedule("poke", "rate(1 hour)", queue),
    )
    unpriced = {u.resource: u.reason for u in estimate(graph).unpriced}
    assert unpriced["nightly"] == "schedule cron(0 3 * * ? *): only rate() schedules are estimated"
    assert unpriced["poke"].startswith(f"target '{queue}' is no function of the plan")


def test_the_orchestrators_sweep_is_priced_from_the_foundations_plan(
    stack_graph: Callable[[str], ResourceGraph],
) -> None:
    graph = stack_graph("foundation-aws-staging")
    result = estimate(graph)
    fixed = lines_of(result, "fixed")
    functions = {f.inputs["name"]: f for f in graph.of_type("aws:lambda/function:Function")}
    rules = graph.of_type(EVENT_RULE)
    assert [r.name for r in rules] == ["orchestrator-sweep"]
    invocations = 730 * 60
    for rule in rules:
        function = functions[rule.inputs["name"].removesuffix("-sweep")]
        memory_gb = function.inputs["memorySize"] / 1024
        assert fixed[(rule.name, "lambda.requests")].quantity == pytest.approx(invocations / 1e6)
        duration = fixed[(rule.name, "lambda.duration")]
        assert duration.price.sku == function.inputs["architectures"][0]
        assert duration.quantity == pytest.approx(invocations * SCHEDULED_SECONDS * memory_gb)
        assert fixed[(rule.name, "xray.traces-recorded")].quantity == pytest.approx(invocations / 1e6)
    sweeps = sum(line.monthly for (resource, _), line in fixed.items() if resource.endswith("-sweep"))
    assert sweeps == pytest.approx(0.35, abs=0.01), "about 0.35 USD a month, as the README says"
