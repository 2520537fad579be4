"""The AWS network as planned: private subnets with no way to the internet, every security-group rule, the
endpoints in every subnet, flow logs, and exactly what a function placed in the VPC may do to the network."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_aws import get_caller_identity_output

from components.aws.context import AwsContext
from components.aws.iam import Statement
from components.aws.network import Network, NetworkArgs
from components.aws.role import ExecutionRole
from components.aws.serverless_agent import LambdaAgent, LambdaAgentArgs
from components.packaging import Package
from core.engine import record
from core.graph import Resource, ResourceGraph

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
TAGS = {"agentstage-environment": "dev"}
SERVICES = ("bedrock-runtime", "sqs", "secretsmanager")
OUTPUTS = "agentstage:test:Outputs"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
ARM_PACKAGE = Package(
    Path("build/lambda-arm64-lean.zip"), "0" * 64, vendored=False, platform="manylinux2014_aarch64"
)
"""A lean package as the offline plan builds it (only its path and hash reach the graph)."""

Factory = Callable[[AwsContext], Mapping[str, Any] | None]


def build(factory: Factory) -> ResourceGraph:
    """The graph of a program that builds ``factory(context)``; what it returns is recorded as the inputs of
    a test-only ``agentstage:test:Outputs`` resource (what a consumer of those outputs receives)."""

    def program() -> None:
        account = get_caller_identity_output().account_id
        context = AwsContext("ags", "dev", REGION, account, TAGS, kms_key_arn=KEY)
        outputs = factory(context)
        if outputs:
            pulumi.CustomResource(OUTPUTS, "outputs", dict(outputs))

    return record(program, config={"aws:region": REGION})


def network(context: AwsContext, **args: Any) -> Network:
    return Network("network", context, NetworkArgs(interface_services=SERVICES, **args))


def only(graph: ResourceGraph, type_: str, name: str | None = None) -> Resource:
    found = [r for r in graph.of_type(type_) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
    return found[0]


def grants(graph: ResourceGraph, role: str) -> dict[str, list[dict[str, Any]]]:
    """Grant (inline policy) name -> statements, for the role named ``role``."""
    return {
        p.inputs["name"]: json.loads(p.inputs["policy"])["Statement"]
        for p in graph.of_type(ROLE_POLICY)
        if p.inputs["role"] == role
    }


def ec2_arn(kind: str, resource_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{resource_id}"


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    """The network, and an agent function placed in it."""

    def factory(context: AwsContext) -> dict[str, Any]:
        net = network(context)
        role = ExecutionRole("agent", context)
        placement = net.place(role)
        LambdaAgent("agent", context, agent_args(role, vpc=placement))
        return {"subnet_ids": list(placement.subnet_ids), "groups": list(placement.security_group_ids)}

    return build(factory)


def agent_args(role: ExecutionRole, **extra: Any) -> LambdaAgentArgs:
    settings = {
        "agents": "[]",
        "environment": "dev",
        "llm_provider": "bedrock",
        "llm_auth": "aws",
        "llm_endpoint": f"https://bedrock-runtime.{REGION}.amazonaws.com",
        "auth_mode": "jwt",
        "telemetry_exporter": "none",
    }
    return LambdaAgentArgs(role=role, package=ARM_PACKAGE, runtime_settings=settings, **extra)


def test_the_vpc_has_private_subnets_only_and_no_route_out(graph: ResourceGraph) -> None:
    vpc = only(graph, "aws:ec2/vpc:Vpc")
    assert (vpc.get("cidrBlock"), vpc.get("enableDnsSupport"), vpc.get("enableDnsHostnames")) == (
        "10.20.0.0/16",
        True,
        True,
    )
    subnets = sorted(graph.of_type(SUBNET), key=lambda s: s.name)
    assert [
        (s.get("availabilityZone"), s.get("cidrBlock"), s.get("mapPublicIpOnLaunch")) for s in subnets
    ] == [
        (f"{REGION}a", "10.20.0.0/20", False),
        (f"{REGION}b", "10.20.16.0/20", False),
    ]
    for type_ in (
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/eip:Eip",
        "aws:ec2/route:Route",
        "aws:ec2/vpcPeeringConnection:VpcPeeringConnection",
    ):
        assert not graph.of_type(type_), f"{type_} would open a way out of the VPC"
    tables = {t.mock_id: t for t in graph.of_type("aws:ec2/routeTable:RouteTable")}
    assert len(tables) == 2 and all(not t.get("routes") for t in tables.values()), "only the local route"
    associations = {
        (a.get("subnetId"), a.get("routeTableId"))
        for a in graph.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    }
    assert {subnet for subnet, _ in associations} == {s.mock_id for s in subnets}
    assert {table for _, table in associations} == set(tables), "each subnet has a route table of its own"


def test_every_security_group_rule(graph: ResourceGraph) -> None:
    groups = {g.mock_id: g.name.removeprefix("network-") for g in graph.of_type(SECURITY_GROUP)}
    assert sorted(groups.values()) == ["database", "endpoints", "functions"]
    assert {g.get("name") for g in graph.of_type(SECURITY_GROUP)} == {
        "ags-dev-network-functions",
        "ags-dev-network-endpoints",
        "ags-dev-network-database",
    }
    gateways = {e.urn: e.name.removeprefix("network-") for e in graph.of_type(ENDPOINT)}

    def rules(type_: str) -> set[tuple[str, str, int, int, str]]:
        found = set()
        for rule in graph.of_type(type_):
            assert rule.get("description"), f"{rule.name}: every rule says why it exists"
            if rule.get("referencedSecurityGroupId"):
                peer = groups[rule.get("referencedSecurityGroupId")]
            else:
                assert rule.get("prefixListId", "").startswith("pl-"), rule.name
                [peer] = [f"prefix list of {gateways[d]}" for d in rule.dependencies if d in gateways]
            assert not rule.get("cidrIpv4") and not rule.get("cidrIpv6"), f"{rule.name}: no address ranges"
            found.add(
                (
                    groups[rule.get("securityGroupId")],
                    rule.get("ipProtocol"),
                    rule.get("fromPort"),
                    rule.get("toPort"),
                    peer,
                )
            )
        return found

    assert rules("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule") == {
        ("functions", "tcp", 443, 443, "endpoints"),
        ("functions", "tcp", 443, 443, "prefix list of s3"),
        ("functions", "tcp", 443, 443, "prefix list of dynamodb"),
        ("functions", "tcp", 5432, 5432, "database"),
    }
    assert rules("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") == {
        ("endpoints", "tcp", 443, 443, "functions"),
        ("database", "tcp", 5432, 5432, "functions"),
    }
    for group in graph.of_type(SECURITY_GROUP):
        assert not group.get("ingress") and not group.get("egress"), (
            f"{group.name}: rules are separate resources"
        )
    default = only(graph, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.get("vpcId") == only(graph, "aws:ec2/vpc:Vpc").mock_id
    assert not default.get("ingress") and not default.get("egress"), "the default group keeps no rule"


def test_endpoints_in_every_subnet_with_private_dns_and_account_only_policies(graph: ResourceGraph) -> None:
    subnets = sorted(s.mock_id for s in graph.of_type(SUBNET))
    tables = sorted(t.mock_id for t in graph.of_type("aws:ec2/routeTable:RouteTable"))
    endpoints_group = only(graph, SECURITY_GROUP, "network-endpoints").mock_id
    endpoints = {
        e.get("serviceName").removeprefix(f"com.amazonaws.{REGION}."): e for e in graph.of_type(ENDPOINT)
    }
    assert set(endpoints) == {*SERVICES, "s3", "dynamodb"}
    for service in SERVICES:
        endpoint = endpoints[service]
        assert endpoint.get("vpcEndpointType") == "Interface"
        assert sorted(endpoint.get("subnetIds")) == subnets, f"{service}: an interface in every subnet"
        assert (endpoint.get("privateDnsEnabled"), endpoint.get("securityGroupIds")) == (
            True,
            [endpoints_group],
        )
    for service in ("s3", "dynamodb"):
        endpoint = endpoints[service]
        assert endpoint.get("vpcEndpointType") == "Gateway"
        assert sorted(endpoint.get("routeTableIds")) == tables
    own_resources = {"s3", "dynamodb", "sqs", "secretsmanager"}
    for service, endpoint in endpoints.items():
        [statement] = json.loads(endpoint.get("policy"))["Statement"]
        condition = {"aws:PrincipalAccount": ACCOUNT}
        if service in own_resources:
            condition["aws:ResourceAccount"] = ACCOUNT
        assert statement == {
            "Sid": "ThisAccountOnly",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": condition},
        }, service


def test_flow_logs_record_all_traffic_sealed_and_kept(graph: ResourceGraph) -> None:
    logs = only(graph, "aws:cloudwatch/logGroup:LogGroup", "network-flow-logs")
    assert (logs.get("name"), logs.get("kmsKeyId"), logs.get("retentionInDays")) == (
        "/aws/vpc-flow-logs/ags-dev-network",
        KEY,
        30,
    )
    flow = only(graph, "aws:ec2/flowLog:FlowLog")
    role = only(graph, "aws:iam/role:Role", "network-flow-logs-role")
    assert (flow.get("vpcId"), flow.get("trafficType"), flow.get("logDestinationType")) == (
        only(graph, "aws:ec2/vpc:Vpc").mock_id,
        "ALL",
        "cloud-watch-logs",
    )
    assert (flow.get("logDestination"), flow.get("iamRoleArn")) == (logs.arn, role.arn)
    [trust] = json.loads(role.get("assumeRolePolicy"))["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert grants(graph, "ags-dev-network-flow-logs") == {
        "flow-logs-write": [
            {
                "Sid": "WriteFlowLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": f"{logs.arn}:*",
            }
        ]
    }
    writes = only(graph, ROLE_POLICY, "network-flow-logs-flow-logs-write")
    assert writes.urn in flow.dependencies, "the role may write before the flow log starts"


def test_a_placed_function_may_manage_interfaces_in_the_private_subnets_only(graph: ResourceGraph) -> None:
    subnets = sorted(ec2_arn("subnet", s.mock_id) for s in graph.of_type(SUBNET))
    functions = only(graph, SECURITY_GROUP, "network-functions").mock_id
    assert grants(graph, "ags-dev-agent")["vpc-network-interfaces"] == [
        {
            "Sid": "CreateInterfacesInPrivateSubnets",
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterface"],
            "Resource": sorted([*subnets, ec2_arn("security-group", functions)]),
        },
        {
            "Sid": "ManageInterfacesInPrivateSubnets",
            "Effect": "Allow",
            "Action": [
                "ec2:AssignPrivateIpAddresses",
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/*",
            "Condition": {"ArnEquals": {"ec2:Subnet": subnets}},
        },
        {
            "Sid": "DescribeInterfaces",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            "Resource": "*",
        },
    ]


def test_a_placed_function_runs_in_the_subnets_after_its_grant(graph: ResourceGraph) -> None:
    function = only(graph, FUNCTION, "agent-function")
    subnets = sorted(s.mock_id for s in graph.of_type(SUBNET))
    functions = only(graph, SECURITY_GROUP, "network-functions").mock_id
    assert sorted(function.get("vpcConfig.subnetIds")) == subnets
    assert function.get("vpcConfig.securityGroupIds") == [functions]
    grant = only(graph, ROLE_POLICY, "agent-vpc-network-interfaces")
    assert grant.urn in function.dependencies, "Lambda checks the interface permissions when it creates them"
    assert only(graph, OUTPUTS).inputs == {
        "subnet_ids": function.get("vpcConfig.subnetIds"),
        "groups": [functions],
    }


def test_a_function_not_placed_has_no_vpc_config() -> None:
    def factory(context: AwsContext) -> None:
        LambdaAgent("agent", context, agent_args(ExecutionRole("agent", context)))

    function = only(build(factory), FUNCTION)
    assert "vpcConfig" not in function.inputs


def test_a_placement_serves_the_role_it_was_granted_to_only() -> None:
    def factory(context: AwsContext) -> None:
        placement = network(context).place(ExecutionRole("worker", context))
        agent_args(ExecutionRole("agent", context), vpc=placement)

    with pytest.raises(ValueError, match="vpc: the placement was granted to another execution role"):
        build(factory)


def test_a_region_with_too_few_zones_is_named() -> None:
    with pytest.raises(ValueError, match=r"zones: 4 availability zones asked, the region offers 3"):
        build(lambda context: network(context, zones=4) and None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"cidr": "10.20.0.0/33"}, "cidr: '10.20.0.0/33' is not an IPv4 network"),
        ({"cidr": "8.8.0.0/16"}, "must be a private IPv4 range"),
        ({"cidr": "10.0.0.0/8"}, "of /16 to /24"),
        ({"zones": 1}, "zones: 1 is not between 2 and 6"),
        ({"interface_services": ["s3", "sqs"]}, r"\['s3'\] already have gateway endpoints"),
        ({"interface_services": ["sqs", "sqs"]}, r"\['sqs'\] are listed more than once"),
        ({"interface_services": ["com.amazonaws.eu-west-1.sqs "]}, "are not endpoint service names"),
    ],
)
def test_bad_network_arguments_are_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkArgs(**args)


def test_interface_services_are_a_list() -> None:
    with pytest.raises(TypeError, match="interface_services: a list of service names, not the text 'sqs'"):
        NetworkArgs(interface_services="sqs")


def test_only_describe_actions_may_name_every_resource() -> None:
    Statement("Describe", ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"), ("*",))
    with pytest.raises(ValueError, match="only for actions without resource-level scope"):
        Statement("Create", ("ec2:CreateNetworkInterface",), ("*",))


def test_a_function_runs_the_entry_point_it_is_given() -> None:
    def factory(context: AwsContext) -> None:
        LambdaAgent(
            "worker", context, agent_args(ExecutionRole("worker", context), handler="lambda_handler.tasks")
        )

    assert only(build(factory), FUNCTION).get("handler") == "lambda_handler.tasks"
    with pytest.raises(ValueError, match="handler: 'lambda_handler' is not module.function"):
        build(lambda context: agent_args(ExecutionRole("worker", context), handler="lambda_handler") and None)
