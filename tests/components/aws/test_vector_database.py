"""The shared vector DB as planned: Aurora's security properties, who may connect as whom (exact ARNs), the
settings a connecting role gets, and the bootstrap: its role's statements and what it is invoked with."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_aws import get_caller_identity_output

from agent_runtime.memory.postgres_iam import iam_settings
from agent_runtime.settings import Settings
from components.aws.context import AwsContext
from components.aws.encryption import stack_log_groups
from components.aws.network import Network, NetworkArgs
from components.aws.role import ExecutionRole
from components.aws.vector_database import VectorDatabase, VectorDatabaseArgs
from components.packaging import Package
from core.engine import record
from core.graph import Resource, ResourceGraph

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
PACKAGE = Package(
    Path("build/lambda-arm64-lean.zip"), "f" * 64, vendored=False, platform="manylinux2014_aarch64"
)
"""A lean package as the offline plan builds it (only its path and hash reach the graph)."""
OUTPUTS = "agentstage:test:Outputs"
CLUSTER = "aws:rds/cluster:Cluster"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
WRITER, READER = "agentstage_writer", "agentstage_reader"

Factory = Callable[[AwsContext, Network], Mapping[str, Any] | None]


def build(factory: Factory, services: tuple[str, ...] = ("secretsmanager", "sqs")) -> ResourceGraph:
    """The graph of a network and ``factory(context, network)``; what the factory returns is recorded as the
    inputs of a test-only ``agentstage:test:Outputs`` resource."""

    def program() -> None:
        account = get_caller_identity_output().account_id
        context = AwsContext(
            "ags", "dev", REGION, account, {"agentstage-environment": "dev"}, kms_key_arn=KEY
        )
        outputs = factory(context, Network("network", context, NetworkArgs(interface_services=services)))
        if outputs:
            pulumi.CustomResource(OUTPUTS, "outputs", dict(outputs))

    return record(program, config={"aws:region": REGION})


def database(network: Network, context: AwsContext, **args: Any) -> VectorDatabase:
    args = {"dimensions": 1024, **args}
    return VectorDatabase(
        "knowledge", context, VectorDatabaseArgs(network=network, bootstrap_package=PACKAGE, **args)
    )


def only(graph: ResourceGraph, type_: str, name: str | None = None) -> Resource:
    found = [r for r in graph.of_type(type_) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
    return found[0]


def grants(graph: ResourceGraph, role: str) -> dict[str, list[dict[str, Any]]]:
    return {
        p.inputs["name"]: json.loads(p.inputs["policy"])["Statement"]
        for p in graph.of_type(ROLE_POLICY)
        if p.inputs["role"] == role
    }


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    """The database in a dev stack; the ingestion worker connects as the writer, an agent as the reader."""

    def factory(context: AwsContext, network: Network) -> dict[str, Any]:
        db = database(network, context)
        db.grant_connect(ExecutionRole("worker", context), WRITER)
        db.grant_connect(ExecutionRole("agent", context), READER)
        return {
            "endpoint": db.endpoint,
            "reader_endpoint": db.reader_endpoint,
            "cluster_resource_id": db.cluster_resource_id,
            "master_secret_arn": db.master_secret_arn,
            "writer": db.runtime_settings(WRITER),
            "reader": db.runtime_settings(READER),
        }

    return build(factory)


@pytest.fixture(scope="module")
def outputs(graph: ResourceGraph) -> dict[str, Any]:
    return only(graph, OUTPUTS).inputs


def test_the_cluster_is_private_sealed_and_authenticated_by_iam(graph: ResourceGraph) -> None:
    cluster = only(graph, CLUSTER)
    subnets = only(graph, "aws:rds/subnetGroup:SubnetGroup")
    database_group = only(graph, "aws:ec2/securityGroup:SecurityGroup", "network-database").mock_id
    assert {key: cluster.get(key) for key in (
        "clusterIdentifier", "engine", "engineMode", "engineVersion", "databaseName", "port",
        "storageEncrypted", "kmsKeyId", "iamDatabaseAuthenticationEnabled",
        "manageMasterUserPassword", "masterUserSecretKmsKeyId", "masterUsername",
        "vpcSecurityGroupIds", "dbSubnetGroupName", "serverlessv2ScalingConfiguration",
        "backupRetentionPeriod", "copyTagsToSnapshot", "enabledCloudwatchLogsExports",
        "deletionProtection", "skipFinalSnapshot", "autoMinorVersionUpgrade", "databaseInsightsMode",
        "performanceInsightsEnabled", "performanceInsightsKmsKeyId", "performanceInsightsRetentionPeriod",
    )} == {
        "clusterIdentifier": "ags-dev-knowledge", "engine": "aurora-postgresql", "engineMode": "provisioned",
        "engineVersion": "16.6", "databaseName": "agentstage", "port": 5432,
        "storageEncrypted": True, "kmsKeyId": KEY, "iamDatabaseAuthenticationEnabled": True,
        "manageMasterUserPassword": True, "masterUserSecretKmsKeyId": KEY, "masterUsername": "dbadmin",
        "vpcSecurityGroupIds": [database_group], "dbSubnetGroupName": subnets.mock_id,
        "serverlessv2ScalingConfiguration": {"minCapacity": 0, "maxCapacity": 4, "secondsUntilAutoPause": 900},
        "backupRetentionPeriod": 7, "copyTagsToSnapshot": True, "enabledCloudwatchLogsExports": ["postgresql"],
        "deletionProtection": False, "skipFinalSnapshot": True, "autoMinorVersionUpgrade": True,
        "databaseInsightsMode": "standard",
        "performanceInsightsEnabled": True, "performanceInsightsKmsKeyId": KEY,
        "performanceInsightsRetentionPeriod": 7,
    }  # fmt: skip
    assert "masterPassword" not in cluster.inputs and "masterPasswordWo" not in cluster.inputs
    assert sorted(subnets.get("subnetIds")) == sorted(
        s.mock_id for s in graph.of_type("aws:ec2/subnet:Subnet")
    )
    logs = only(graph, "aws:cloudwatch/logGroup:LogGroup", "knowledge-logs")
    assert (logs.get("name"), logs.get("kmsKeyId"), logs.get("retentionInDays")) == (
        "/aws/rds/cluster/ags-dev-knowledge/postgresql",
        KEY,
        30,
    )
    assert logs.urn in cluster.dependencies, "RDS would create the log group itself: unsealed, kept forever"
    instance = only(graph, "aws:rds/clusterInstance:ClusterInstance")
    assert {key: instance.get(key) for key in (
        "clusterIdentifier", "instanceClass", "engine", "publiclyAccessible", "dbSubnetGroupName",
        "performanceInsightsEnabled", "performanceInsightsKmsKeyId", "autoMinorVersionUpgrade",
    )} == {
        "clusterIdentifier": cluster.mock_id, "instanceClass": "db.serverless", "engine": "aurora-postgresql",
        "publiclyAccessible": False, "dbSubnetGroupName": subnets.mock_id,
        "performanceInsightsEnabled": True, "performanceInsightsKmsKeyId": KEY, "autoMinorVersionUpgrade": True,
    }  # fmt: skip


def test_every_log_group_is_one_the_stack_key_may_seal(graph: ResourceGraph) -> None:
    """CloudWatch Logs may use the stack's key only for the stack's log groups (its key policy's patterns):
    the cluster's, the bootstrap's and the flow logs' groups must be among them, or creating them fails."""
    context = AwsContext("ags", "dev", REGION, ACCOUNT)
    patterns = stack_log_groups(context, ACCOUNT)
    groups = graph.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) == 3
    for group in groups:
        assert any(fnmatch.fnmatchcase(group.arn, pattern) for pattern in patterns), (group.arn, patterns)


def test_protected_environments_keep_the_cluster_and_a_final_snapshot() -> None:
    graph = build(lambda context, network: database(network, context, deletion_protection=True) and None)
    cluster = only(graph, CLUSTER)
    assert (
        cluster.get("deletionProtection"),
        cluster.get("skipFinalSnapshot"),
        cluster.get("finalSnapshotIdentifier"),
    ) == (True, False, "ags-dev-knowledge-final")


def test_roles_connect_as_their_database_user_only(graph: ResourceGraph, outputs: dict[str, Any]) -> None:
    resource_id = outputs["cluster_resource_id"]
    assert re.fullmatch(r"cluster-[A-Z0-9]{26}", resource_id), resource_id
    for role, user in (("ags-dev-worker", WRITER), ("ags-dev-agent", READER)):
        assert grants(graph, role) == {
            "database-connect": [
                {
                    "Sid": "ConnectAsDatabaseUser",
                    "Effect": "Allow",
                    "Action": ["rds-db:connect"],
                    "Resource": f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{resource_id}/{user}",
                }
            ]
        }


def test_the_settings_of_a_connecting_role(outputs: dict[str, Any]) -> None:
    domain = f"\\.cluster-(ro-)?[a-z0-9]{{12}}\\.{REGION}\\.rds\\.amazonaws\\.com"
    assert re.fullmatch(f"ags-dev-knowledge{domain}", outputs["endpoint"])
    assert outputs["reader_endpoint"] == outputs["endpoint"].replace(".cluster-", ".cluster-ro-")
    for user, host in ((WRITER, outputs["endpoint"]), (READER, outputs["reader_endpoint"])):
        assert outputs["writer" if user == WRITER else "reader"] == {
            "knowledge_backend": "postgres",
            "postgres_dsn": f"host={host} port=5432 dbname=agentstage user={user} sslmode=require",
            "postgres_iam_auth": "true",
            "aws_region": REGION,
            "embedding_dimensions": "1024",
        }
    assert "password" not in json.dumps(outputs).lower()


def test_the_runtime_signs_in_with_the_settings_it_is_given(outputs: dict[str, Any]) -> None:
    """The runtime's own check of an IAM-authenticated DSN: one host, a user, no password, TLS."""
    for user in (WRITER, READER):
        settings = Settings(**outputs["writer" if user == WRITER else "reader"])
        target, region = iam_settings(settings)
        host = outputs["endpoint" if user == WRITER else "reader_endpoint"]
        assert (target.host, target.port, target.user, target.sslmode, region) == (
            host,
            5432,
            user,
            "require",
            REGION,
        )
        assert (settings.knowledge_backend, settings.embedding_dimensions) == ("postgres", 1024)


def test_the_bootstrap_role_reads_the_master_secret_only(
    graph: ResourceGraph, outputs: dict[str, Any]
) -> None:
    secret = outputs["master_secret_arn"]
    assert re.fullmatch(
        rf"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-[0-9a-f-]{{36}}-[A-Za-z]{{6}}", secret
    )
    statements = grants(graph, "ags-dev-knowledge-bootstrap")
    assert set(statements) == {"logs-write", "master-secret-read", "vpc-network-interfaces"}
    assert statements["logs-write"] == [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/ags-dev-knowledge-bootstrap:*",
        }
    ]
    assert statements["master-secret-read"] == [
        {
            "Sid": "ReadMasterSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": secret,
        },
        {
            "Sid": "DecryptMasterSecret",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": KEY,
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
                    "kms:EncryptionContext:SecretARN": secret,
                }
            },
        },
    ]
    sids = [s["Sid"] for s in statements["vpc-network-interfaces"]]
    assert sids == [
        "CreateInterfacesInPrivateSubnets",
        "ManageInterfacesInPrivateSubnets",
        "DescribeInterfaces",
    ]


def test_the_bootstrap_runs_in_the_vpc_once_the_instance_is_up(
    graph: ResourceGraph, outputs: dict[str, Any]
) -> None:
    function = only(graph, "aws:lambda/function:Function", "knowledge-bootstrap")
    functions_group = only(graph, "aws:ec2/securityGroup:SecurityGroup", "network-functions").mock_id
    assert {key: function.get(key) for key in (
        "name", "handler", "runtime", "architectures", "code", "sourceCodeHash", "reservedConcurrentExecutions",
    )} == {
        "name": "ags-dev-knowledge-bootstrap", "handler": "aws_database_bootstrap.handler", "runtime": "python3.11",
        "architectures": ["arm64"], "code": {"path": "build/lambda-arm64-lean.zip"}, "sourceCodeHash": "f" * 64,
        "reservedConcurrentExecutions": 1,
    }  # fmt: skip
    assert function.get("vpcConfig.securityGroupIds") == [functions_group]
    assert sorted(function.get("vpcConfig.subnetIds")) == sorted(
        s.mock_id for s in graph.of_type("aws:ec2/subnet:Subnet")
    )
    assert "environment" not in function.inputs, "it is told everything in its invocation"
    for grant in ("logs-write", "master-secret-read", "vpc-network-interfaces"):
        assert only(graph, ROLE_POLICY, f"knowledge-bootstrap-{grant}").urn in function.dependencies, grant

    invocation = only(graph, "aws:lambda/invocation:Invocation")
    request = {
        "secretArn": outputs["master_secret_arn"],
        "host": outputs["endpoint"],
        "port": 5432,
        "database": "agentstage",
        "schema": "agentstage",
        "writer": WRITER,
        "reader": READER,
        "dimensions": 1024,
    }
    assert invocation.get("functionName") == "ags-dev-knowledge-bootstrap"
    assert json.loads(invocation.get("input")) == request
    assert invocation.get("triggers") == {
        "code": "f" * 64,
        **{key: str(value) for key, value in request.items()},
    }
    instance = only(graph, "aws:rds/clusterInstance:ClusterInstance")
    secrets_endpoint = only(graph, "aws:ec2/vpcEndpoint:VpcEndpoint", "network-secretsmanager")
    to_database = only(
        graph, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "network-database-from-functions"
    )
    waits_for = {instance.urn, function.urn, secrets_endpoint.urn, to_database.urn}
    assert waits_for <= set(invocation.dependencies), (
        "the instance is up and the function can reach it and the secret"
    )


def test_a_connection_as_another_user_is_refused() -> None:
    def factory(context: AwsContext, network: Network) -> None:
        database(network, context).grant_connect(ExecutionRole("worker", context), "dbadmin")

    with pytest.raises(ValueError, match="db_user: 'dbadmin' is not a user the bootstrap creates"):
        build(factory)


def test_the_bootstrap_needs_the_secrets_manager_endpoint() -> None:
    with pytest.raises(ValueError, match="add 'secretsmanager' to the network's interface_services"):
        build(lambda context, network: database(network, context) and None, services=("sqs",))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"dimensions": 3072}, "dimensions: 3072 is outside 1-2000"),
        ({"engine_version": "15.4"}, "engine_version: 15.4 cannot scale to 0 ACUs"),
        ({"engine_version": "15.3", "min_capacity": 0.5}, "engine_version: 15.3 has no pgvector HNSW index"),
        ({"engine_version": "16"}, "engine_version: '16' is not a major.minor version"),
        ({"min_capacity": 0.25}, "min_capacity: 0.25 must be 0 to 256 ACUs in steps of 0.5"),
        (
            {"min_capacity": 2, "max_capacity": 1},
            "max_capacity: 1 must be at least 1 ACU and at least min_capacity",
        ),
        ({"seconds_until_auto_pause": 60}, "seconds_until_auto_pause: 60 is outside 300-86400"),
        ({"writer_user": "Writer"}, "writer_user: 'Writer' must be a lowercase PostgreSQL name"),
        ({"reader_user": "rdsadmin"}, "not starting with pg_ or rds"),
        ({"reader_user": WRITER}, "writer_user and reader_user must differ"),
        ({"backup_retention_days": 0}, "backup_retention_days: 0 is outside Aurora's 1-35"),
        ({"architecture": "x86_64"}, "the package was built for manylinux2014_aarch64"),
    ],
)
def test_bad_database_arguments_are_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(lambda context, network: database(network, context, **args) and None)


def test_a_nonzero_minimum_needs_no_auto_pause_version() -> None:
    graph = build(
        lambda context, network: database(network, context, engine_version="15.4", min_capacity=0.5) and None
    )
    assert only(graph, CLUSTER).get("serverlessv2ScalingConfiguration") == {
        "minCapacity": 0.5,
        "maxCapacity": 4,
    }
