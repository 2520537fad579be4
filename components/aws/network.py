"""A private network for the functions that reach the stack's database: no route to the internet at all.

- subnets: one private subnet per availability zone, each with its own route table holding only the VPC's
  local route (and the gateway endpoints' prefix-list routes). No internet gateway, no NAT: a function in
  this VPC reaches AWS APIs through VPC endpoints only, and nothing else.
- endpoints: an interface endpoint (private DNS, one network interface in every subnet) for each service
  the in-VPC functions call (``bedrock-runtime``, ``sqs``, ``secretsmanager``...), and gateway endpoints
  for S3 and DynamoDB on the route tables (free, unlike interface endpoints). Their policies admit only
  this account's principals and, for services whose resources are always this account's, only this
  account's resources: stolen credentials of another account cannot use them, and our own roles cannot
  carry data out to another account's bucket, table or queue through them.
- security groups, one per purpose, every rule named: ``functions`` may send only 443 to the endpoints
  (and the gateway endpoints' prefix lists) and 5432 to the database; ``endpoints`` admits 443 from
  functions; ``database`` admits 5432 from functions. The VPC's default security group keeps no rule
  (checkov CKV2_AWS_12), so nothing placed by mistake in it can talk to anything.
- flow logs: every accepted and rejected flow, to a log group with retention sealed with the stack's key,
  written through a role only the flow-logs service may assume.

:meth:`Network.place` is how a function joins: its execution role gets exactly the network-interface
permissions Lambda needs, and the returned :class:`VpcPlacement` goes into the function's ``vpc_config``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws import ec2, iam, vpc

from components.aws.context import PARTITION, AwsContext
from components.aws.iam import Statement
from components.aws.logs import log_group, retention
from components.aws.role import ExecutionRole
from components.base import Component

GATEWAY_SERVICES = ("s3", "dynamodb")
"""Services reached through gateway endpoints (route-table entries, no hourly charge)."""
OWN_RESOURCES_ONLY = frozenset({"s3", "dynamodb", "sqs", "secretsmanager", "kms"})
"""Services whose resources the functions use are all this account's: the endpoint policy says so too.
(Bedrock's foundation models belong to AWS, so its endpoint checks the principal only.)"""
POLICY_SERVICES = OWN_RESOURCES_ONLY | {"bedrock-runtime", "sts", "logs", "sns", "lambda", "ecr.api"}
"""Services whose endpoints take an endpoint policy; the others keep the default (full access) one."""
SUBNET_BITS = 4
"""Each subnet is 1/16 of the VPC (a /20 of a /16): room for the functions' and endpoints' interfaces and
for subnets added later."""
MIN_ZONES, MAX_ZONES = 2, 6
HTTPS, POSTGRES = 443, 5432
NETWORK_INTERFACES_GRANT = "vpc-network-interfaces"
_SERVICE = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")


@dataclass(frozen=True)
class NetworkArgs:
    """``cidr`` of the VPC (private, /16 to /24); ``zones`` availability zones, one private subnet each;
    ``interface_services`` the AWS services the in-VPC functions call (endpoint names: ``sqs``,
    ``secretsmanager``, ``bedrock-runtime``); S3 and DynamoDB always have gateway endpoints."""

    cidr: str = "10.20.0.0/16"
    zones: int = 2
    interface_services: Sequence[str] = ()
    flow_log_retention_days: int = 30

    def __post_init__(self) -> None:
        try:
            network = ipaddress.ip_network(self.cidr)
        except ValueError as error:
            raise ValueError(
                f"cidr: '{self.cidr}' is not an IPv4 network such as 10.20.0.0/16 ({error})"
            ) from None
        if network.version != 4 or not network.is_private or not 16 <= network.prefixlen <= 24:
            raise ValueError(
                f"cidr: '{self.cidr}' must be a private IPv4 range (10/8, 172.16/12, 192.168/16) of /16 to /24"
            )
        if not MIN_ZONES <= self.zones <= MAX_ZONES:
            raise ValueError(
                f"zones: {self.zones} is not between {MIN_ZONES} and {MAX_ZONES}; a DB subnet group and "
                "Lambda's high availability both need subnets in at least two availability zones"
            )
        if isinstance(self.interface_services, str):
            raise TypeError(
                f"interface_services: a list of service names, not the text '{self.interface_services}'"
            )
        services = list(self.interface_services)
        bad = [s for s in services if not _SERVICE.fullmatch(s)]
        if bad:
            raise ValueError(
                f"interface_services: {bad} are not endpoint service names such as 'sqs' or 'bedrock-runtime'"
            )
        gateway = sorted(set(services) & set(GATEWAY_SERVICES))
        if gateway:
            raise ValueError(
                f"interface_services: {gateway} already have gateway endpoints (free); leave them out"
            )
        repeated = sorted({s for s in services if services.count(s) > 1})
        if repeated:
            raise ValueError(f"interface_services: {repeated} are listed more than once")


@dataclass(frozen=True)
class VpcPlacement:
    """Where a function runs in the VPC: the private subnets and the functions' security group, for
    ``role`` only, which already holds the network-interface permissions (``grant``, which the function
    must be created after: Lambda checks them when it creates the function's interfaces)."""

    role: ExecutionRole
    subnet_ids: tuple[pulumi.Input[str], ...]
    security_group_ids: tuple[pulumi.Input[str], ...]
    grant: iam.RolePolicy


class Network(Component):
    """``agentstage:aws:Network``: VPC, private subnets, route tables, endpoints, security groups, flow logs.

    Outputs: ``vpc_id``, ``subnet_ids``, ``functions_security_group_id``, ``endpoints_security_group_id``,
    ``database_security_group_id``.
    """

    def __init__(
        self, name: str, context: AwsContext, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "Network", name, opts)
        self._context = context
        self.interface_services = tuple(args.interface_services)
        self.vpc = ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_support=True,  # private DNS of the interface endpoints needs both
            enable_dns_hostnames=True,
            tags=self._tags(context.name(name)),
            opts=self.child(),
        )
        ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=self.vpc.id,
            tags=self._tags(context.name(name, "default")),
            opts=self.child(),
        )
        self.subnets, self.route_tables = self._private_subnets(name, args)
        self.subnet_ids = [subnet.id for subnet in self.subnets]
        functions, endpoints, database = (
            ec2.SecurityGroup(
                f"{name}-{purpose}",
                name=context.name(name, purpose),
                description=description,
                vpc_id=self.vpc.id,
                tags=self._tags(context.name(name, purpose)),
                opts=self.child(),
            )
            for purpose, description in (
                ("functions", "Functions in the VPC: HTTPS to the endpoints, PostgreSQL to the database"),
                ("endpoints", "Interface endpoints: HTTPS from the functions"),
                ("database", "The database: PostgreSQL from the functions"),
            )
        )
        self.functions_security_group = functions
        self.gateway_endpoints = {
            service: self._endpoint(name, service, route_table_ids=[t.id for t in self.route_tables])
            for service in GATEWAY_SERVICES
        }
        self.interface_endpoints = {
            service: self._endpoint(name, service, security_group_id=endpoints.id)
            for service in self.interface_services
        }
        self._rules(name, functions, endpoints, database)
        self._flow_logs(name, context, args)
        self.vpc_id: pulumi.Output[str] = self.vpc.id
        self.functions_security_group_id: pulumi.Output[str] = functions.id
        self.endpoints_security_group_id: pulumi.Output[str] = endpoints.id
        self.database_security_group_id: pulumi.Output[str] = database.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "subnet_ids": self.subnet_ids,
                "functions_security_group_id": self.functions_security_group_id,
                "endpoints_security_group_id": self.endpoints_security_group_id,
                "database_security_group_id": self.database_security_group_id,
            }
        )

    def place(self, role: ExecutionRole) -> VpcPlacement:
        """Grant ``role`` the network interfaces a Lambda function in these subnets needs, and say where.

        Lambda creates, describes and deletes the function's interfaces with the execution role
        (AWSLambdaVPCAccessExecutionRole's actions). Creation is scoped to these subnets and the functions'
        security group; the interfaces' own ids are unknown until Lambda creates them, so actions on them
        are scoped by the ``ec2:Subnet`` they live in. The Describe actions have no resource-level scope.
        """
        context = self._context
        interfaces = pulumi.Output.concat(
            f"arn:{PARTITION}:ec2:{context.region}:", context.account_id, ":network-interface/*"
        )
        subnet_arns = tuple(subnet.arn for subnet in self.subnets)
        grant = role.allow(
            NETWORK_INTERFACES_GRANT,
            Statement(
                "CreateInterfacesInPrivateSubnets",
                ("ec2:CreateNetworkInterface",),
                (*subnet_arns, self.functions_security_group.arn),
            ),
            Statement(
                "ManageInterfacesInPrivateSubnets",
                (
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ),
                (interfaces,),
                {"ArnEquals": {"ec2:Subnet": list(subnet_arns)}},
            ),
            Statement("DescribeInterfaces", ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"), ("*",)),
        )
        return VpcPlacement(
            role=role,
            subnet_ids=tuple(self.subnet_ids),
            security_group_ids=(self.functions_security_group_id,),
            grant=grant,
        )

    def _tags(self, name: str) -> dict[str, str]:
        """The stack's tags and a ``Name`` (what the VPC console lists)."""
        return {**self._context.tags, "Name": name}

    def _private_subnets(self, name: str, args: NetworkArgs) -> tuple[list[ec2.Subnet], list[ec2.RouteTable]]:
        offered = aws.get_availability_zones(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],  # no Local Zones
            opts=pulumi.InvokeOptions(parent=self),
        ).names
        if len(offered) < args.zones:
            raise ValueError(
                f"zones: {args.zones} availability zones asked, the region offers {len(offered)} "
                f"({', '.join(offered)})"
            )
        blocks = ipaddress.ip_network(args.cidr).subnets(prefixlen_diff=SUBNET_BITS)
        subnets, tables = [], []
        for index, (zone, block) in enumerate(zip(offered[: args.zones], blocks, strict=False)):
            label = f"private-{index + 1}"
            subnet = ec2.Subnet(
                f"{name}-{label}",
                vpc_id=self.vpc.id,
                cidr_block=str(block),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=self._tags(self._context.name(name, label)),
                opts=self.child(),
            )
            table = ec2.RouteTable(
                f"{name}-{label}-routes",
                vpc_id=self.vpc.id,  # only the implicit local route: no internet, no NAT
                tags=self._tags(self._context.name(name, label)),
                opts=self.child(),
            )
            ec2.RouteTableAssociation(
                f"{name}-{label}-routes", subnet_id=subnet.id, route_table_id=table.id, opts=self.child()
            )
            subnets.append(subnet)
            tables.append(table)
        return subnets, tables

    def _endpoint(
        self,
        name: str,
        service: str,
        *,
        route_table_ids: list[pulumi.Output[str]] | None = None,
        security_group_id: pulumi.Output[str] | None = None,
    ) -> ec2.VpcEndpoint:
        context = self._context
        gateway = route_table_ids is not None
        policy = (
            pulumi.Output.from_input(context.account_id).apply(
                lambda account: _endpoint_policy(service, account)
            )
            if service in POLICY_SERVICES
            else None
        )
        return ec2.VpcEndpoint(
            f"{name}-{service.replace('.', '-')}",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{context.region}.{service}",
            vpc_endpoint_type="Gateway" if gateway else "Interface",
            route_table_ids=route_table_ids,
            subnet_ids=None if gateway else self.subnet_ids,
            security_group_ids=None if gateway else [security_group_id],
            private_dns_enabled=None if gateway else True,
            policy=policy,
            tags=self._tags(context.name(name, service)),
            opts=self.child(),
        )

    def _rules(
        self,
        name: str,
        functions: ec2.SecurityGroup,
        endpoints: ec2.SecurityGroup,
        database: ec2.SecurityGroup,
    ) -> None:
        """Every rule there is; a security group without rules of a direction denies it."""
        egress: list[tuple[str, int, dict[str, pulumi.Input[str]], str]] = [
            (
                "to-endpoints",
                HTTPS,
                {"referenced_security_group_id": endpoints.id},
                "HTTPS to the interface endpoints",
            ),
            (
                "to-database",
                POSTGRES,
                {"referenced_security_group_id": database.id},
                "PostgreSQL to the database",
            ),
            *(
                (
                    f"to-{service}",
                    HTTPS,
                    {"prefix_list_id": endpoint.prefix_list_id},
                    f"HTTPS to {service} (gateway endpoint)",
                )
                for service, endpoint in self.gateway_endpoints.items()
            ),
        ]
        for label, port, peer, description in egress:
            vpc.SecurityGroupEgressRule(
                f"{name}-functions-{label}",
                security_group_id=functions.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=description,
                opts=self.child(),
                **peer,
            )
        for label, group, port, description in (
            ("endpoints-from-functions", endpoints, HTTPS, "HTTPS from the functions"),
            ("database-from-functions", database, POSTGRES, "PostgreSQL from the functions"),
        ):
            vpc.SecurityGroupIngressRule(
                f"{name}-{label}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                referenced_security_group_id=functions.id,
                description=description,
                opts=self.child(),
            )

    def _flow_logs(self, name: str, context: AwsContext, args: NetworkArgs) -> None:
        logs = log_group(
            f"{name}-flow",
            context,
            f"/aws/vpc-flow-logs/{context.name(name)}",
            retention(args.flow_log_retention_days),
            self,
        )
        role = ExecutionRole(
            f"{name}-flow-logs", context, service="vpc-flow-logs.amazonaws.com", opts=self.child()
        )
        writes = role.allow(
            "flow-logs-write",
            Statement(
                "WriteFlowLogs",
                ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"),
                (pulumi.Output.concat(logs.arn, ":*"),),
            ),
        )
        ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=logs.arn,
            iam_role_arn=role.arn,
            tags=self._tags(context.name(name, "flow-log")),
            opts=self.child(depends_on=[writes]),
        )


def _endpoint_policy(service: str, account: str) -> str:
    """Any action, but only by this account's principals (and on its resources where they all are)."""
    condition = {"aws:PrincipalAccount": account}
    if service in OWN_RESOURCES_ONLY:
        condition["aws:ResourceAccount"] = account
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ThisAccountOnly",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"StringEquals": condition},
                }
            ],
        },
        sort_keys=True,
    )
