"""The AWS network as planned: private subnets with no way to the internet, every security-group rule, the
endpoints in every subnet, flow logs, and exactly what a function placed in the VPC may do to the network;
the enterprise layout with subnets per role, admitted workloads, a brought VPC, and every refused input."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_aws import ec2, get_caller_identity_output

from components.aws.context import AwsContext
from components.aws.iam import Statement
from components.aws.network import ROLES, ExistingVpc, Network, NetworkArgs
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
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
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


def rules(graph: ResourceGraph, type_: str) -> set[tuple[str, str, int, int, str]]:
    """Every rule of ``type_`` as (group, protocol, from port, to port, peer), groups by their short names;
    a peer that is no group of the graph keeps its id."""
    groups = {g.mock_id: g.name.split("-", 1)[1] for g in graph.of_type(SECURITY_GROUP)}
    gateways = {e.urn: e.name.removeprefix("network-") for e in graph.of_type(ENDPOINT)}
    found = set()
    for rule in graph.of_type(type_):
        assert rule.get("description"), f"{rule.name}: every rule says why it exists"
        if rule.get("referencedSecurityGroupId"):
            peer = groups.get(rule.get("referencedSecurityGroupId"), rule.get("referencedSecurityGroupId"))
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


def test_every_security_group_rule(graph: ResourceGraph) -> None:
    groups = {g.mock_id: g.name.removeprefix("network-") for g in graph.of_type(SECURITY_GROUP)}
    assert sorted(groups.values()) == ["database", "endpoints", "functions"]
    assert {g.get("name") for g in graph.of_type(SECURITY_GROUP)} == {
        "ags-dev-network-functions",
        "ags-dev-network-endpoints",
        "ags-dev-network-database",
    }
    assert rules(graph, EGRESS) == {
        ("functions", "tcp", 443, 443, "endpoints"),
        ("functions", "tcp", 443, 443, "prefix list of s3"),
        ("functions", "tcp", 443, 443, "prefix list of dynamodb"),
        ("functions", "tcp", 5432, 5432, "database"),
    }
    assert rules(graph, INGRESS) == {
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


# --- The enterprise layout: subnets per role -------------------------------------------------------------

LAYOUT = {
    "lambda": ("10.20.0.0/20", "10.20.16.0/20"),
    "nodes": ("10.20.64.0/20", "10.20.80.0/20"),
    "endpoints": ("10.20.128.0/20", "10.20.144.0/20"),
    "data": ("10.20.192.0/20", "10.20.208.0/20"),
}
"""The four roles' quarters of 10.20.0.0/16, one /20 per zone at the start of each."""


def subnets_of(graph: ResourceGraph, role: str) -> list[Resource]:
    return sorted(
        (s for s in graph.of_type(SUBNET) if s.name.startswith(f"network-{role}-")), key=lambda s: s.name
    )


@pytest.fixture(scope="module")
def enterprise() -> ResourceGraph:
    """The four-role network; a stand-in for an EKS cluster's security group admitted as ``nodes``; an agent
    function placed in the network."""

    def factory(context: AwsContext) -> dict[str, Any]:
        net = network(context, subnet_roles=ROLES)
        cluster = ec2.SecurityGroup("cluster-nodes", vpc_id=net.vpc_id, description="EKS cluster")
        net.admit("nodes", cluster.id, ("endpoints", "database"))
        role = ExecutionRole("agent", context)
        LambdaAgent("agent", context, agent_args(role, vpc=net.place(role)))
        return {
            **{role: net.subnet_ids_of(role) for role in ROLES},
            "interface_endpoint_ids": net.interface_endpoint_ids,
            "gateway_endpoint_ids": net.gateway_endpoint_ids,
            "sqs_perimeter": list(net.perimeter("sqs").endpoint_ids),
            "s3_perimeter": list(net.perimeter("s3").endpoint_ids),
        }

    return build(factory)


def test_each_role_has_a_subnet_in_each_zone_carved_from_its_quarter(enterprise: ResourceGraph) -> None:
    for role, blocks in LAYOUT.items():
        subnets = subnets_of(enterprise, role)
        assert [(s.name, s.get("cidrBlock"), s.get("availabilityZone")) for s in subnets] == [
            (f"network-{role}-1", blocks[0], f"{REGION}a"),
            (f"network-{role}-2", blocks[1], f"{REGION}b"),
        ]
        assert [s.get("tags.Name") for s in subnets] == [
            f"ags-dev-network-{role}-1",
            f"ags-dev-network-{role}-2",
        ]
        assert only(enterprise, OUTPUTS).get(role) == [s.mock_id for s in subnets]
    assert len(enterprise.of_type(SUBNET)) == 8
    tags = {key for s in enterprise.of_type(SUBNET) for key in s.get("tags")}
    assert not [key for key in tags if key.startswith("kubernetes.io/")], (
        "no internal load balancer uses them"
    )
    assert not any(s.get("mapPublicIpOnLaunch") for s in enterprise.of_type(SUBNET))


def test_only_the_workloads_subnets_route_to_the_gateway_endpoints(enterprise: ResourceGraph) -> None:
    tables = {t.name.removesuffix("-routes"): t.mock_id for t in enterprise.of_type(ROUTE_TABLE)}
    associations = {
        a.get("subnetId"): a.get("routeTableId")
        for a in enterprise.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    }
    assert associations == {s.mock_id: tables[s.name] for s in enterprise.of_type(SUBNET)}
    workloads = sorted(tables[s.name] for role in ("lambda", "nodes") for s in subnets_of(enterprise, role))
    for service in ("s3", "dynamodb"):
        assert sorted(only(enterprise, ENDPOINT, f"network-{service}").get("routeTableIds")) == workloads


def test_interface_endpoints_live_in_the_endpoints_subnets(enterprise: ResourceGraph) -> None:
    endpoint_subnets = [s.mock_id for s in subnets_of(enterprise, "endpoints")]
    for service in SERVICES:
        endpoint = only(enterprise, ENDPOINT, f"network-{service}")
        assert endpoint.get("subnetIds") == endpoint_subnets, service


def test_functions_run_in_the_lambda_subnets_and_manage_interfaces_there_only(
    enterprise: ResourceGraph,
) -> None:
    lambda_subnets = subnets_of(enterprise, "lambda")
    function = only(enterprise, FUNCTION, "agent-function")
    assert function.get("vpcConfig.subnetIds") == [s.mock_id for s in lambda_subnets]
    [create, manage, _] = grants(enterprise, "ags-dev-agent")["vpc-network-interfaces"]
    functions = only(enterprise, SECURITY_GROUP, "network-functions").mock_id
    arns = [ec2_arn("subnet", s.mock_id) for s in lambda_subnets]
    assert create["Resource"] == sorted([*arns, ec2_arn("security-group", functions)])
    assert manage["Condition"] == {"ArnEquals": {"ec2:Subnet": arns}}


def test_endpoints_and_database_admit_the_functions_and_the_nodes_only(enterprise: ResourceGraph) -> None:
    assert rules(enterprise, INGRESS) == {
        ("endpoints", "tcp", 443, 443, "functions"),
        ("endpoints", "tcp", 443, 443, "nodes"),
        ("database", "tcp", 5432, 5432, "functions"),
        ("database", "tcp", 5432, 5432, "nodes"),
    }
    assert rules(enterprise, EGRESS) == {
        ("functions", "tcp", 443, 443, "endpoints"),
        ("functions", "tcp", 443, 443, "prefix list of s3"),
        ("functions", "tcp", 443, 443, "prefix list of dynamodb"),
        ("functions", "tcp", 5432, 5432, "database"),
    }
    nodes = only(enterprise, INGRESS, "network-database-from-nodes")
    assert nodes.get("description") == "PostgreSQL from the nodes"


def test_endpoint_ids_by_service_are_what_perimeters_name(enterprise: ResourceGraph) -> None:
    ids = {e.name.removeprefix("network-"): e.mock_id for e in enterprise.of_type(ENDPOINT)}
    outputs = only(enterprise, OUTPUTS)
    assert outputs.get("interface_endpoint_ids") == {service: ids[service] for service in SERVICES}
    assert outputs.get("gateway_endpoint_ids") == {"s3": ids["s3"], "dynamodb": ids["dynamodb"]}
    assert (outputs.get("sqs_perimeter"), outputs.get("s3_perimeter")) == ([ids["sqs"]], [ids["s3"]])


def test_a_layout_per_role_keeps_every_zone_in_place_when_one_is_added() -> None:
    two = NetworkArgs(subnet_roles=ROLES).layout()
    three = NetworkArgs(subnet_roles=ROLES, zones=3).layout()
    assert two == LAYOUT
    assert {role: blocks[:2] for role, blocks in three.items()} == two
    assert three["nodes"][2] == "10.20.96.0/20"
    assert NetworkArgs().layout() == {"private": ("10.20.0.0/20", "10.20.16.0/20")}
    assert NetworkArgs(subnet_roles=("lambda", "endpoints"), database=False, cidr="10.0.0.0/20").layout() == {
        "lambda": ("10.0.0.0/24", "10.0.1.0/24"),
        "endpoints": ("10.0.8.0/24", "10.0.9.0/24"),
    }


def test_a_one_role_network_serves_every_role_with_its_subnets() -> None:
    def factory(context: AwsContext) -> dict[str, Any]:
        net = network(context)
        return {"all": net.subnet_ids, **{role: net.subnet_ids_of(role) for role in ROLES}}

    graph = build(factory)
    private = [s.mock_id for s in subnets_of(graph, "private")]
    assert only(graph, OUTPUTS).inputs == {"all": private, **{role: private for role in ROLES}}


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        (lambda net: net.subnet_ids, r"subnet_ids: network 'network' has subnets per role .*subnet_ids_of"),
        (lambda net: net.subnet_ids_of("gateway"), r"role: 'gateway' is not a subnet role"),
        (lambda net: net.perimeter("kms"), r"service: network 'network' has no 'kms' endpoint"),
    ],
)
def test_asking_a_role_network_for_what_it_has_not_is_named(
    ask: Callable[[Network], Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(lambda context: ask(network(context, subnet_roles=ROLES)) and None)


def test_a_role_the_network_lacks_is_named() -> None:
    def factory(context: AwsContext) -> None:
        network(context, subnet_roles=("lambda", "endpoints"), database=False).subnet_ids_of("nodes")

    with pytest.raises(ValueError, match=r"role: network 'network' has no 'nodes' subnets .*subnet_roles"):
        build(factory)


# --- Paths: a network without a database, admitted workloads ---------------------------------------------


def test_without_a_database_there_is_no_database_group_nor_path() -> None:
    def factory(context: AwsContext) -> None:
        net = network(context, subnet_roles=("lambda", "nodes", "endpoints"), database=False)
        net.admit("nodes", "sg-0123456789abcdef0")

    graph = build(factory)
    assert sorted(g.name for g in graph.of_type(SECURITY_GROUP)) == ["network-endpoints", "network-functions"]
    assert only(graph, SECURITY_GROUP, "network-functions").get("description") == (
        "Functions in the VPC: HTTPS to the endpoints"
    )
    assert rules(graph, INGRESS) == {
        ("endpoints", "tcp", 443, 443, "functions"),
        ("endpoints", "tcp", 443, 443, "sg-0123456789abcdef0"),
    }
    assert {port for _, _, port, _, _ in rules(graph, EGRESS)} == {443}
    with pytest.raises(ValueError, match=r"database: network 'network' was built without a database"):
        build(lambda context: network(context, database=False).database_security_group_id and None)


@pytest.mark.parametrize(
    ("admit", "message"),
    [
        (lambda net: net.admit("Nodes", "sg-1"), "peer: 'Nodes' must be a short lowercase name"),
        (lambda net: net.admit("functions", "sg-1"), "not 'functions', which is admitted already"),
        (lambda net: net.admit("nodes", "sg-1", "endpoints"), "targets: a non-empty list"),
        (lambda net: net.admit("nodes", "sg-1", ()), "targets: a non-empty list"),
        (lambda net: net.admit("nodes", "sg-1", ("internet",)), r"targets: \['internet'\] are not paths"),
        (
            lambda net: net.admit("nodes", "sg-1") and net.admit("nodes", "sg-1", ("endpoints", "database")),
            r"peer: 'nodes' is already admitted to \['endpoints'\]",
        ),
    ],
)
def test_bad_admissions_are_named(admit: Callable[[Network], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(lambda context: admit(network(context)) and None)


def test_no_database_path_without_a_database() -> None:
    def factory(context: AwsContext) -> None:
        network(context, database=False).admit("nodes", "sg-1", ("database",))

    with pytest.raises(ValueError, match="targets: network 'network' has no database"):
        build(factory)


# --- Bring your own VPC ------------------------------------------------------------------------------------

EXISTING_SUBNETS = {
    role: [f"subnet-0{index}{zone}{'0' * 14}" for zone in "ab"] for index, role in enumerate(ROLES, start=1)
}
EXISTING = ExistingVpc(
    vpc_id="vpc-0123456789abcdef0",
    subnet_ids=EXISTING_SUBNETS,
    route_table_ids=["rtb-0aaaaaaaaaaaaaaa1", "rtb-0aaaaaaaaaaaaaaa2"],
    endpoint_ids={"sqs": "vpce-0123456789abcdef0"},
    endpoint_security_group_ids=["sg-0ffffffffffffffff"],
)


@pytest.fixture(scope="module")
def brought() -> ResourceGraph:
    """The four-role network in an existing VPC that already has an SQS endpoint; an agent placed in it."""

    def factory(context: AwsContext) -> dict[str, Any]:
        net = network(context, subnet_roles=ROLES, existing=EXISTING)
        role = ExecutionRole("agent", context)
        LambdaAgent("agent", context, agent_args(role, vpc=net.place(role)))
        return {
            "vpc_id": net.vpc_id,
            "nodes": net.subnet_ids_of("nodes"),
            "interface_endpoint_ids": net.interface_endpoint_ids,
            "sqs_perimeter": list(net.perimeter("sqs").endpoint_ids),
        }

    return build(factory)


def test_a_brought_vpc_keeps_its_own_layout_and_flow_logs(brought: ResourceGraph) -> None:
    for type_ in (
        "aws:ec2/vpc:Vpc",
        SUBNET,
        ROUTE_TABLE,
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "aws:ec2/flowLog:FlowLog",
    ):
        assert not brought.of_type(type_), f"{type_} is the VPC owner's"
    assert not [r.name for r in brought if r.name.startswith("network-flow")], "no flow-log group or role"
    assert only(brought, OUTPUTS).get("vpc_id") == EXISTING.vpc_id
    assert only(brought, OUTPUTS).get("nodes") == EXISTING_SUBNETS["nodes"]


def test_a_brought_vpc_gets_the_groups_and_the_endpoints_it_lacks(brought: ResourceGraph) -> None:
    assert {g.get("vpcId") for g in brought.of_type(SECURITY_GROUP)} == {EXISTING.vpc_id}
    endpoints = {e.name.removeprefix("network-"): e for e in brought.of_type(ENDPOINT)}
    assert sorted(endpoints) == ["bedrock-runtime", "dynamodb", "s3", "secretsmanager"], "sqs exists already"
    for service in ("bedrock-runtime", "secretsmanager"):
        assert endpoints[service].get("vpcId") == EXISTING.vpc_id
        assert endpoints[service].get("subnetIds") == EXISTING_SUBNETS["endpoints"]
    for service in ("s3", "dynamodb"):
        assert endpoints[service].get("routeTableIds") == list(EXISTING.route_table_ids)
    outputs = only(brought, OUTPUTS)
    assert outputs.get("interface_endpoint_ids") == {
        "bedrock-runtime": endpoints["bedrock-runtime"].mock_id,
        "secretsmanager": endpoints["secretsmanager"].mock_id,
        "sqs": "vpce-0123456789abcdef0",
    }
    assert outputs.get("sqs_perimeter") == ["vpce-0123456789abcdef0"]
    assert ("functions", "tcp", 443, 443, "sg-0ffffffffffffffff") in rules(brought, EGRESS)


def test_a_function_in_a_brought_vpc_manages_interfaces_in_its_lambda_subnets(brought: ResourceGraph) -> None:
    arns = [ec2_arn("subnet", subnet) for subnet in EXISTING_SUBNETS["lambda"]]
    [create, manage, _] = grants(brought, "ags-dev-agent")["vpc-network-interfaces"]
    functions = only(brought, SECURITY_GROUP, "network-functions").mock_id
    assert create["Resource"] == sorted([*arns, ec2_arn("security-group", functions)])
    assert manage["Condition"] == {"ArnEquals": {"ec2:Subnet": arns}}
    assert only(brought, FUNCTION).get("vpcConfig.subnetIds") == EXISTING_SUBNETS["lambda"]


# --- Refused inputs ----------------------------------------------------------------------------------------


def existing(**changes: Any) -> ExistingVpc:
    fields = {
        "vpc_id": EXISTING.vpc_id,
        "subnet_ids": EXISTING_SUBNETS,
        "route_table_ids": EXISTING.route_table_ids,
        "endpoint_ids": EXISTING.endpoint_ids,
        "endpoint_security_group_ids": EXISTING.endpoint_security_group_ids,
    }
    return ExistingVpc(**{**fields, **changes})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"subnet_roles": "lambda"}, "subnet_roles: a list of roles"),
        ({"subnet_roles": ()}, r"subnet_roles: \[\] must be \['private'\] or some of"),
        ({"subnet_roles": ("private", "lambda")}, r"unknown: \['private'\]"),
        ({"subnet_roles": ("lambda", "gateway")}, r"unknown: \['gateway'\]"),
        (
            {"subnet_roles": ("lambda", "lambda", "endpoints", "data")},
            r"\['lambda'\] are listed more than once",
        ),
        ({"subnet_roles": ("endpoints", "data")}, "name a workload role"),
        ({"subnet_roles": ("lambda", "data")}, "the interface endpoints need an 'endpoints' role"),
        ({"subnet_roles": ("lambda", "endpoints")}, r"the database \(database=True\) needs a 'data' role"),
        (
            {"subnet_roles": ROLES, "zones": 5},
            "zones: 5 zones of 4 subnet roles need 20 subnets; .* at most 4",
        ),
        (
            {"subnet_roles": ROLES, "cidr": "10.20.0.0/21"},
            r"the 'nodes' subnets need at least a /24: use a /20",
        ),
        (
            {"cidr": "10.20.0.0/24", "interface_services": [f"service{n}" for n in range(12)]},
            "gives each subnet 11 usable addresses, too few for the 12 interface endpoints",
        ),
        (
            {"existing": existing()},
            r"exactly the roles \['private'\] \(subnet_roles\), not \['data', 'endpoints'",
        ),
        (
            {"subnet_roles": ROLES, "existing": existing(endpoint_ids={"kms": "vpce-0123456789abcdef0"})},
            "'kms'",
        ),
    ],
)
def test_bad_layouts_are_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        NetworkArgs(**{"interface_services": SERVICES, **args})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vpc_id": "vpc-123"}, "existing.vpc_id: 'vpc-123' is not an id such as vpc-0123456789abcdef0"),
        ({"subnet_ids": {"lambda": "subnet-0123456789abcdef0"}}, r"subnet_ids\['lambda'\]: a list of ids"),
        ({"subnet_ids": {"lambda": ["subnet-0123456789abcdef0"]}}, "1 subnet.*at least 2 availability zones"),
        (
            {
                "subnet_ids": {
                    "lambda": ["subnet-01234567", "subnet-89abcdef"],
                    "nodes": ["subnet-01234567", "subnet-0"],
                }
            },
            r"subnet_ids\['nodes'\]: 'subnet-0' is not an id",
        ),
        (
            {
                "subnet_ids": {
                    "lambda": ["subnet-01234567", "subnet-89abcdef"],
                    "data": ["subnet-01234567", "subnet-0a0a0a0a"],
                }
            },
            r"\['subnet-01234567'\] are listed more than once; a subnet has one role",
        ),
        ({"route_table_ids": []}, "existing.route_table_ids: the route tables .* are needed"),
        ({"route_table_ids": ["rtb-x"]}, "existing.route_table_ids: 'rtb-x' is not an id"),
        ({"endpoint_ids": {"s3": "vpce-0123456789abcdef0"}}, r"\['s3'\] are gateway services"),
        ({"endpoint_ids": {"sqs": "vpc-0123456789abcdef0"}}, r"existing.endpoint_ids\['sqs'\]: .* not an id"),
        (
            {"endpoint_security_group_ids": []},
            "give the security groups of the VPC's own endpoints exactly when",
        ),
        ({"endpoint_ids": {}}, "give the security groups of the VPC's own endpoints exactly when"),
    ],
)
def test_bad_existing_vpcs_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        existing(**changes)


def test_the_s3_endpoint_serves_ecr_image_layers_where_nodes_pull_images() -> None:
    """ECR keeps image layers in an AWS-owned bucket: a node pulling through the endpoints must reach it."""
    from components.aws.network import _endpoint_policy

    with_layers = json.loads(_endpoint_policy("s3", "123456789012", image_layers="eu-west-1"))["Statement"]
    assert with_layers[1] == {
        "Sid": "EcrImageLayers",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/*",
    }
    assert len(json.loads(_endpoint_policy("s3", "123456789012"))["Statement"]) == 1
