"""An AWS graph shaped like the foundation stack's, with the links checkov's cross-resource checks follow.

A REST API gateway behind a WAF web ACL (with its logging configuration and stage association), a VPC with
security groups and their rules, an Aurora cluster, a bucket with its lifecycle, notification and ownership
controls. Ids, ARNs and dependencies are written as the plan engine records them - including the awkward
ones: a bucket notification's id is its bucket's name, a cluster's identifier is its subnet group's name,
a logging configuration's id is its web ACL's ARN. pulumi-aws is not imported: inputs are written as it
serializes them (camelCase, single objects for Terraform's one-element blocks).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

from core.graph import Resource, ResourceGraph

STACK = "aws-linked"
ACCOUNT = "123456789012"
REGION = "eu-west-1"

API_ID = "szd41436ee"
STAGE_ARN = f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}/stages/live"
ACL_ARN = f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/ags-firewall/f0d64419"
FIREWALL_LOGS_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:aws-waf-logs-ags-firewall"
GATEWAY_LOGS_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/apigateway/ags-gateway"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/d095b13c"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ags-ingest"
DATABASE = "ags-knowledge"  # the cluster's identifier and its subnet group's name
BUCKET = "ags-documents"  # the bucket's name: its id, and its notification's id
FUNCTIONS_SG, DATABASE_SG, ENDPOINTS_SG = "sg-f12d48d5", "sg-7f1456e5", "sg-060ace54"
SUBNET = "subnet-1333e647"


class Spec(NamedTuple):
    """One resource: its type, logical name, inputs, id, ARN and the logical names it was computed from."""

    type: str
    name: str
    inputs: dict[str, Any]
    id: str
    arn: str | None = None
    depends_on: tuple[str, ...] = ()


def _gateway() -> list[Spec]:
    api = ("gateway-api",)
    return [
        Spec(
            "aws:apigateway/restApi:RestApi",
            "gateway-api",
            {
                "name": "ags-gateway",
                "apiKeySource": "AUTHORIZER",
                "endpointConfiguration": {"types": "REGIONAL"},
            },
            API_ID,
            f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}",
        ),
        Spec(
            "aws:apigateway/authorizer:Authorizer",
            "gateway-authorizer",
            {"name": "bearer-token", "restApi": API_ID, "type": "TOKEN"},
            "w0a2bm",
            depends_on=api,
        ),
        Spec(
            "aws:apigateway/requestValidator:RequestValidator",
            "gateway-validator",
            {"name": "parameters", "restApi": API_ID, "validateRequestParameters": True},
            "rv12ab",
            depends_on=api,
        ),
        Spec(
            "aws:apigateway/resource:Resource",
            "gateway-proxy",
            {"parentId": "rc4dv8ix2w", "pathPart": "{proxy+}", "restApi": API_ID},
            "ivi9m4",
            depends_on=api,
        ),
        Spec(
            "aws:apigateway/method:Method",
            "gateway-proxy-any",
            {
                "apiKeyRequired": True,
                "authorization": "CUSTOM",
                "authorizerId": "w0a2bm",
                "httpMethod": "ANY",
                "requestParameters": {"method.request.header.Authorization": True},
                "requestValidatorId": "rv12ab",
                "resourceId": "ivi9m4",
                "restApi": API_ID,
            },
            "agm-ivi9m4-ANY",
            depends_on=("gateway-authorizer", "gateway-validator", "gateway-proxy", *api),
        ),
        Spec(
            "aws:apigateway/deployment:Deployment",
            "gateway-deployment",
            {"restApi": API_ID, "triggers": {"routes": "539b901f"}},
            "d53153",
            depends_on=("gateway-proxy-any", *api),
        ),
        Spec(
            "aws:cloudwatch/logGroup:LogGroup",
            "gateway-logs",
            {"name": "/aws/apigateway/ags-gateway", "retentionInDays": 30, "kmsKeyId": KEY_ARN},
            "/aws/apigateway/ags-gateway",
            GATEWAY_LOGS_ARN,
            depends_on=("encryption-key",),
        ),
        Spec(
            "aws:apigateway/stage:Stage",
            "gateway-stage",
            {
                "accessLogSettings": {
                    "destinationArn": GATEWAY_LOGS_ARN,
                    "format": '{"requestId": "$context.requestId"}',
                },
                "deployment": "d53153",
                "restApi": API_ID,
                "stageName": "live",
                "xrayTracingEnabled": True,
            },
            f"ags-{API_ID}-live",
            STAGE_ARN,
            depends_on=("gateway-deployment", "gateway-logs", *api),
        ),
        Spec(
            "aws:apigateway/methodSettings:MethodSettings",
            "gateway-settings",
            {
                "methodPath": "*/*",
                "restApi": API_ID,
                "settings": {"cachingEnabled": False, "loggingLevel": "ERROR", "metricsEnabled": True},
                "stageName": "live",
            },
            "gateway-settings",
            depends_on=("gateway-stage", *api),
        ),
        Spec(
            "aws:apigateway/usagePlan:UsagePlan",
            "gateway-plan",
            {"apiStages": [{"apiId": API_ID, "stage": "live"}], "name": "ags-default"},
            "cvzvtc",
            depends_on=("gateway-stage", *api),
        ),
    ]


def _firewall() -> list[Spec]:
    visibility = {"cloudwatchMetricsEnabled": True, "sampledRequestsEnabled": True}
    return [
        Spec(
            "aws:wafv2/webAcl:WebAcl",
            "firewall-acl",
            {
                "name": "ags-firewall",
                "scope": "REGIONAL",
                "defaultAction": {"allow": {}},
                "associationConfig": {
                    "requestBodies": [{"apiGateway": {"defaultSizeInspectionLimit": "KB_64"}}]
                },
                "customResponseBodies": [
                    {
                        "key": "too-large",
                        "content": '{"error": "too large"}',
                        "contentType": "APPLICATION_JSON",
                    }
                ],
                "rules": [
                    {
                        "name": "AnonymousIp",
                        "priority": 10,
                        "overrideAction": {"none": {}},
                        "statement": {
                            "managedRuleGroupStatement": {
                                "name": "AWSManagedRulesAnonymousIpList",
                                "vendorName": "AWS",
                                "ruleActionOverrides": [
                                    {"name": "HostingProviderIPList", "actionToUse": {"count": {}}}
                                ],
                            }
                        },
                        "visibilityConfig": {**visibility, "metricName": "AnonymousIp"},
                    },
                    {
                        "name": "KnownBadInputs",
                        "priority": 20,
                        "overrideAction": {"none": {}},
                        "statement": {
                            "managedRuleGroupStatement": {
                                "name": "AWSManagedRulesKnownBadInputsRuleSet",
                                "vendorName": "AWS",
                            }
                        },
                        "visibilityConfig": {**visibility, "metricName": "KnownBadInputs"},
                    },
                    {
                        "name": "BodySize",
                        "priority": 30,
                        "action": {
                            "block": {
                                "customResponse": {"customResponseBodyKey": "too-large", "responseCode": 413}
                            }
                        },
                        "statement": {
                            "sizeConstraintStatement": {
                                "comparisonOperator": "GT",
                                "fieldToMatch": {"body": {"oversizeHandling": "MATCH"}},
                                "size": 65536,
                                "textTransformations": [{"priority": 0, "type": "NONE"}],
                            }
                        },
                        "visibilityConfig": {**visibility, "metricName": "BodySize"},
                    },
                ],
                "visibilityConfig": {**visibility, "metricName": "ags-firewall"},
            },
            "f0d64419",
            ACL_ARN,
        ),
        Spec(
            "aws:cloudwatch/logGroup:LogGroup",
            "firewall-logs",
            {"name": "aws-waf-logs-ags-firewall", "retentionInDays": 30, "kmsKeyId": KEY_ARN},
            "aws-waf-logs-ags-firewall",
            FIREWALL_LOGS_ARN,
            depends_on=("encryption-key",),
        ),
        Spec(
            "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
            "firewall-logging",
            {
                "logDestinationConfigs": [FIREWALL_LOGS_ARN],
                "loggingFilter": {
                    "defaultBehavior": "DROP",
                    "filters": [
                        {
                            "behavior": "KEEP",
                            "requirement": "MEETS_ANY",
                            "conditions": [{"actionCondition": {"action": "BLOCK"}}],
                        }
                    ],
                },
                "redactedFields": [{"singleHeader": {"name": "authorization"}}],
                "resourceArn": ACL_ARN,
            },
            ACL_ARN,  # AWS names a logging configuration by its web ACL's ARN
            depends_on=("firewall-logs", "firewall-acl"),
        ),
        Spec(
            "aws:wafv2/webAclAssociation:WebAclAssociation",
            "firewall-stage",
            {"resourceArn": STAGE_ARN, "webAclArn": ACL_ARN},
            f"{ACL_ARN},{STAGE_ARN}",
            depends_on=("gateway-stage", "firewall-acl"),
        ),
    ]


def _network() -> list[Spec]:
    vpc = ("network-vpc",)
    groups = [
        Spec(
            "aws:ec2/securityGroup:SecurityGroup",
            f"network-{role}",
            {"name": f"ags-{role}", "description": f"the {role}", "vpcId": "vpc-13494407"},
            group_id,
            f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{group_id}",
            depends_on=vpc,
        )
        for role, group_id in (
            ("functions", FUNCTIONS_SG),
            ("database", DATABASE_SG),
            ("endpoints", ENDPOINTS_SG),
        )
    ]
    return [
        Spec(
            "aws:ec2/vpc:Vpc",
            "network-vpc",
            {"cidrBlock": "10.0.0.0/16", "enableDnsHostnames": True, "enableDnsSupport": True},
            "vpc-13494407",
        ),
        Spec(
            "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
            "network-default-sg",
            {"vpcId": "vpc-13494407", "tags": {"Name": "ags-default"}},
            "sg-72411e7e",
            depends_on=vpc,
        ),
        Spec(
            "aws:ec2/subnet:Subnet",
            "network-private-1",
            {"vpcId": "vpc-13494407", "cidrBlock": "10.0.1.0/24", "availabilityZone": f"{REGION}a"},
            SUBNET,
            depends_on=vpc,
        ),
        Spec(
            "aws:ec2/routeTable:RouteTable",
            "network-private-1-routes",
            {"vpcId": "vpc-13494407", "routes": []},
            "rtb-926e9cf2",
            depends_on=vpc,
        ),
        Spec(
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
            "network-private-1-routes",
            {"routeTableId": "rtb-926e9cf2", "subnetId": SUBNET},
            "rtbassoc-99287859",
            depends_on=("network-private-1-routes", "network-private-1"),
        ),
        *groups,
        Spec(
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "network-database-from-functions",
            {
                "description": "PostgreSQL from the functions",
                "fromPort": 5432,
                "toPort": 5432,
                "ipProtocol": "tcp",
                "referencedSecurityGroupId": FUNCTIONS_SG,
                "securityGroupId": DATABASE_SG,
            },
            "sgr-053dd055",
            depends_on=("network-database", "network-functions"),
        ),
        Spec(
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
            "network-functions-to-database",
            {
                "description": "PostgreSQL to the database",
                "fromPort": 5432,
                "toPort": 5432,
                "ipProtocol": "tcp",
                "referencedSecurityGroupId": DATABASE_SG,
                "securityGroupId": FUNCTIONS_SG,
            },
            "sgr-e2749c83",
            depends_on=("network-database", "network-functions"),
        ),
        Spec(
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            "network-sqs",
            {
                "privateDnsEnabled": True,
                "securityGroupIds": [ENDPOINTS_SG],
                "serviceName": f"com.amazonaws.{REGION}.sqs",
                "subnetIds": [SUBNET],
                "vpcEndpointType": "Interface",
                "vpcId": "vpc-13494407",
            },
            "vpce-dd3c2e40",
            depends_on=("network-endpoints", "network-private-1", *vpc),
        ),
    ]


def _compute_and_data() -> list[Spec]:
    return [
        Spec("aws:kms/key:Key", "encryption-key", {"enableKeyRotation": True}, "d095b13c", KEY_ARN),
        Spec(
            "aws:sqs/queue:Queue",
            "ingest-queue",
            {"name": "ags-ingest", "kmsMasterKeyId": KEY_ARN},
            f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/ags-ingest",
            QUEUE_ARN,
            depends_on=("encryption-key",),
        ),
        Spec(
            "aws:lambda/function:Function",
            "ingest-function",
            {
                "name": "ags-ingest",
                "kmsKeyArn": KEY_ARN,
                "vpcConfig": {"securityGroupIds": [FUNCTIONS_SG], "subnetIds": [SUBNET]},
            },
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-ingest",
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ags-ingest",
            depends_on=("encryption-key", "network-functions", "network-private-1"),
        ),
        Spec(
            "aws:lambda/invocation:Invocation",
            "ingest-bootstrap",
            {"functionName": "ags-ingest", "input": "{}", "triggers": {"code": "8d8c36e5"}},
            "ags-ingest_$LATEST_ea2a755e",
            depends_on=("ingest-function",),
        ),
        Spec(
            "aws:rds/subnetGroup:SubnetGroup",
            "knowledge-subnets",
            {"name": DATABASE, "subnetIds": [SUBNET]},
            DATABASE,
            depends_on=("network-private-1",),
        ),
        Spec(
            "aws:rds/clusterParameterGroup:ClusterParameterGroup",
            "knowledge-parameters",
            {
                "name": "ags-knowledge-logging",
                "family": "aurora-postgresql16",
                "parameters": [
                    {"name": "log_statement", "value": "ddl"},
                    {"name": "log_min_duration_statement", "value": "1000"},
                ],
            },
            "ags-knowledge-logging",
        ),
        Spec(
            "aws:rds/cluster:Cluster",
            "knowledge-cluster",
            {
                "clusterIdentifier": DATABASE,
                "dbClusterParameterGroupName": "ags-knowledge-logging",
                "dbSubnetGroupName": DATABASE,
                "enabledCloudwatchLogsExports": ["postgresql"],
                "engine": "aurora-postgresql",
                "engineVersion": "16.6",
                "iamDatabaseAuthenticationEnabled": True,
                "kmsKeyId": KEY_ARN,
                "serverlessv2ScalingConfiguration": {"maxCapacity": 4, "minCapacity": 0},
                "storageEncrypted": True,
                "vpcSecurityGroupIds": [DATABASE_SG],
            },
            DATABASE,
            f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{DATABASE}",
            depends_on=("encryption-key", "network-database", "knowledge-subnets", "knowledge-parameters"),
        ),
        Spec(
            "aws:rds/clusterInstance:ClusterInstance",
            "knowledge-writer",
            {
                "clusterIdentifier": DATABASE,
                "dbSubnetGroupName": DATABASE,
                "engine": "aurora-postgresql",
                "identifier": f"{DATABASE}-writer",
                "instanceClass": "db.serverless",
                "publiclyAccessible": False,
            },
            f"{DATABASE}-writer",
            depends_on=("knowledge-cluster", "knowledge-subnets"),
        ),
        Spec(
            "aws:s3/bucket:Bucket", "documents-bucket", {"bucket": BUCKET}, BUCKET, f"arn:aws:s3:::{BUCKET}"
        ),
        Spec(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            "documents-lifecycle",
            {
                "bucket": BUCKET,
                "rules": [
                    {
                        "id": "expire-old-versions",
                        "status": "Enabled",
                        "filter": {},
                        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
                        "noncurrentVersionExpiration": {"noncurrentDays": 90},
                    }
                ],
            },
            "documents-lifecycle",
            depends_on=("documents-bucket",),
        ),
        Spec(
            "aws:s3/bucketNotification:BucketNotification",
            "documents-events",
            {"bucket": BUCKET, "queues": [{"events": ["s3:ObjectCreated:*"], "queueArn": QUEUE_ARN}]},
            BUCKET,  # AWS names a bucket's notification configuration by the bucket
            depends_on=("documents-bucket", "ingest-queue"),
        ),
        Spec(
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
            "documents-owner",
            {"bucket": BUCKET, "rule": {"objectOwnership": "BucketOwnerEnforced"}},
            "documents-owner",
            depends_on=("documents-bucket",),
        ),
    ]


def linked_graph(without: Collection[str] = ()) -> ResourceGraph:
    """The graph, less the resources named in ``without`` (and their links)."""
    specs = [
        s for s in (*_gateway(), *_firewall(), *_network(), *_compute_and_data()) if s.name not in without
    ]
    urns = {(s.type, s.name): f"urn:pulumi:{STACK}::agentstage::{s.type}::{s.name}" for s in specs}
    by_name: dict[str, list[str]] = {}
    for (_, name), urn in urns.items():
        by_name.setdefault(name, []).append(urn)
    return ResourceGraph(
        stack=STACK,
        project="agentstage",
        resources=[
            Resource(
                urn=urns[(s.type, s.name)],
                type=s.type,
                name=s.name,
                custom=True,
                inputs=s.inputs,
                mock_id=s.id,
                arn=s.arn,
                dependencies=tuple(
                    urn
                    for name in s.depends_on
                    for urn in by_name.get(name, ())
                    if urn != urns[(s.type, s.name)]
                ),
            )
            for s in specs
        ],
    )
