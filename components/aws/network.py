"""A private network for the stage's functions, nodes and database: no route to the internet at all.

- subnets: private subnets only, one per availability zone for each *role*. The default layout has one
  role, ``private``, whose subnets hold everything. The enterprise layout (``ROLES``) separates
  ``lambda`` (the functions' interfaces), ``nodes`` (EKS nodes, and their pods, whose addresses the VPC
  CNI takes from the nodes' subnets), ``endpoints`` (the interface endpoints) and ``data`` (the database).
  Each subnet has its own route table holding only the VPC's local route and, for the subnets whose
  workloads call S3 and DynamoDB (``lambda`` and ``nodes``, or ``private``), the gateway endpoints'
  prefix-list routes. No internet gateway, no NAT: AWS APIs are reached through VPC endpoints only.
- layout: the VPC is cut into 16 equal blocks and each role takes an equal share of them (a quarter with
  four roles), one block per zone from the start of its share; adding a zone later moves no subnet.
- endpoints: an interface endpoint (private DNS, an interface in each endpoints subnet) for each service
  the workloads call (``bedrock-runtime``, ``sqs``, ``secretsmanager``...; :mod:`core.aws_endpoints`
  derives them from IAM actions), and gateway endpoints for S3 and DynamoDB (free, unlike interface
  endpoints). Their policies admit only this account's principals and, for services whose resources are
  always this account's, only this account's resources: stolen credentials of another account cannot
  use them, and our own roles cannot carry data out to another account's bucket, table or queue through
  them. Their ids, by service, are what a data perimeter names (:meth:`Network.perimeter`).
- security groups, one per purpose, every rule named: ``functions`` may send only 443 to the endpoints
  (and the gateway endpoints' prefix lists) and 5432 to the database; ``endpoints`` admits 443 from the
  functions; ``database`` (unless ``NetworkArgs.database`` is off) admits 5432 from the functions. Other
  workloads with a security group of their own - an EKS cluster's nodes - are admitted with
  :meth:`Network.admit`. The VPC's default security group keeps no rule (checkov CKV2_AWS_12), so
  nothing placed by mistake in it can talk to anything.
- flow logs: every accepted and rejected flow, to a log group with retention sealed with the stack's key,
  written through a role only the flow-logs service may assume.

Bring your own VPC (:class:`ExistingVpc`): the VPC, its subnets, their route tables and flow logs are the
owner's, and none of them is created or changed (nor the VPC's default security group). The stack creates
its security groups in that VPC, the gateway endpoints on the route tables it is given, and the interface
endpoints the VPC does not already have: a VPC can have only one private-DNS endpoint per service, so the
ones it has are named (with their ids, for perimeters) and used as they are.

:meth:`Network.place` is how a function joins: its execution role gets exactly the network-interface
permissions Lambda needs, and the returned :class:`VpcPlacement` goes into the function's ``vpc_config``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws import ec2, iam, vpc

from components.aws.context import PARTITION, AwsContext
from components.aws.data_perimeter import VpcPerimeter
from components.aws.iam import Statement
from components.aws.logs import log_group, retention
from components.aws.network_layout import GATEWAY_ROLES, ROLES, SINGLE_ROLE, ExistingVpc, NetworkArgs
from components.aws.role import ExecutionRole
from components.base import Component
from core.aws_endpoints import GATEWAY_SERVICES

OWN_RESOURCES_ONLY = frozenset({"s3", "dynamodb", "sqs", "secretsmanager", "kms"})
"""Services whose resources the functions use are all this account's: the endpoint policy says so too.
(Bedrock's foundation models belong to AWS, so its endpoint checks the principal only.)"""
POLICY_SERVICES = OWN_RESOURCES_ONLY | {"bedrock-runtime", "sts", "logs", "sns", "lambda", "ecr.api"}
"""Services whose endpoints take an endpoint policy; the others keep the default (full access) one."""
HTTPS, POSTGRES = 443, 5432
PORTS = {"endpoints": HTTPS, "database": POSTGRES}
"""What a workload may be admitted to (:meth:`Network.admit`), and on which port."""
NETWORK_INTERFACES_GRANT = "vpc-network-interfaces"
_LABEL = re.compile(r"[a-z][a-z0-9-]{0,30}")


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

    Outputs: ``vpc_id``, ``subnet_ids`` (by role), ``functions_security_group_id``,
    ``endpoints_security_group_id``, ``database_security_group_id`` (with a database),
    ``interface_endpoint_ids`` and ``gateway_endpoint_ids`` (by service).
    """

    def __init__(
        self, name: str, context: AwsContext, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "Network", name, opts)
        self._name = name
        self._context = context
        self.roles = tuple(args.subnet_roles)
        self.interface_services = tuple(args.interface_services)
        self.vpc: ec2.Vpc | None = None
        self.vpc_id: pulumi.Output[str]
        self._subnet_ids: dict[str, list[pulumi.Input[str]]]
        self._subnet_arns: dict[str, list[pulumi.Input[str]]]
        existing = args.existing
        gateway_tables = self._own_vpc(name, args) if existing is None else self._brought_vpc(existing)
        functions = self._security_group(
            name,
            "functions",
            "Functions in the VPC: HTTPS to the endpoints, PostgreSQL to the database"
            if args.database
            else "Functions in the VPC: HTTPS to the endpoints",
        )
        endpoints = self._security_group(name, "endpoints", "Interface endpoints: HTTPS from the functions")
        self._targets = {"endpoints": endpoints}
        if args.database:
            self._targets["database"] = self._security_group(
                name, "database", "The database: PostgreSQL from the functions"
            )
        self.functions_security_group = functions
        self.gateway_endpoints = {
            service: self._endpoint(name, service, route_table_ids=gateway_tables)
            for service in GATEWAY_SERVICES
        }
        self.interface_endpoints = {
            service: self._endpoint(name, service, security_group_id=endpoints.id)
            for service in args.created_interface_services
        }
        self.interface_endpoint_ids: dict[str, pulumi.Input[str]] = {
            **{service: endpoint.id for service, endpoint in self.interface_endpoints.items()},
            **(existing.endpoint_ids if existing else {}),
        }
        self.gateway_endpoint_ids: dict[str, pulumi.Input[str]] = {
            service: endpoint.id for service, endpoint in self.gateway_endpoints.items()
        }
        self._admitted: set[tuple[str, str]] = set()
        self._rules(name, existing)
        if existing is None:
            self._flow_logs(name, context, args)
        self.functions_security_group_id: pulumi.Output[str] = functions.id
        self.endpoints_security_group_id: pulumi.Output[str] = endpoints.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "subnet_ids": self._subnet_ids,
                "functions_security_group_id": self.functions_security_group_id,
                "endpoints_security_group_id": self.endpoints_security_group_id,
                **({"database_security_group_id": self.database_security_group_id} if args.database else {}),
                "interface_endpoint_ids": self.interface_endpoint_ids,
                "gateway_endpoint_ids": self.gateway_endpoint_ids,
            }
        )

    @property
    def subnet_ids(self) -> list[pulumi.Input[str]]:
        """The private subnets of a one-role network (the default layout); see :meth:`subnet_ids_of`."""
        if self.roles != (SINGLE_ROLE,):
            raise ValueError(
                f"subnet_ids: network '{self._name}' has subnets per role ({', '.join(self.roles)}); ask for "
                f"a role's with network.subnet_ids_of('nodes')"
            )
        return self._subnet_ids[SINGLE_ROLE]

    @property
    def database_security_group_id(self) -> pulumi.Output[str]:
        """The database's security group (5432 from the functions and the admitted workloads)."""
        group = self._targets.get("database")
        if group is None:
            raise ValueError(
                f"database: network '{self._name}' was built without a database (NetworkArgs.database=False); "
                "set it to True to place a database in it"
            )
        return group.id

    def subnet_ids_of(self, role: str) -> list[pulumi.Input[str]]:
        """The subnets of ``role`` (one per zone): where EKS puts its nodes (``nodes``), a DB subnet group
        its database (``data``). In the one-role layout the same subnets serve every role."""
        return self._subnet_ids[self._serving(role)]

    def perimeter(self, service: str) -> VpcPerimeter:
        """The endpoint of ``service`` (``sqs``, ``secretsmanager``, ``s3``, ``dynamodb``) as a data perimeter:
        requests for the fenced actions must come through it."""
        endpoint = {**self.interface_endpoint_ids, **self.gateway_endpoint_ids}.get(service)
        if endpoint is None:
            raise ValueError(
                f"service: network '{self._name}' has no '{service}' endpoint; add it to "
                "NetworkArgs.interface_services"
            )
        return VpcPerimeter(service, (endpoint,))

    def admit(
        self, peer: str, security_group_id: pulumi.Input[str], targets: Sequence[str] = ("endpoints",)
    ) -> list[vpc.SecurityGroupIngressRule]:
        """Let the workloads in ``security_group_id`` - ``peer`` names them, e.g. ``nodes`` for an EKS
        cluster's security group - reach ``targets``: ``endpoints`` (HTTPS) and/or ``database``
        (PostgreSQL). Their egress is the peer group's owner's (EKS's cluster group sends anywhere). The
        VPC's own endpoints of a brought VPC are the owner's to open."""
        if not _LABEL.fullmatch(peer) or peer == "functions":
            raise ValueError(
                f"peer: '{peer}' must be a short lowercase name such as 'nodes' (not 'functions', which is "
                "admitted already)"
            )
        if isinstance(targets, str) or not targets:
            raise ValueError(f"targets: a non-empty list of {sorted(PORTS)}, not {targets!r}")
        unknown = [target for target in targets if target not in PORTS]
        if unknown:
            raise ValueError(f"targets: {unknown} are not paths of the network; use {sorted(PORTS)}")
        if "database" in targets and "database" not in self._targets:
            raise ValueError(
                f"targets: network '{self._name}' has no database (NetworkArgs.database=False) to admit to"
            )
        again = [target for target in targets if (peer, target) in self._admitted]
        if again:
            raise ValueError(f"peer: '{peer}' is already admitted to {again}")
        return [self._admit(peer, security_group_id, target) for target in targets]

    def place(self, role: ExecutionRole) -> VpcPlacement:
        """Grant ``role`` the network interfaces a Lambda function in the functions' subnets needs, and say
        where (the ``lambda`` subnets, or the one-role layout's).

        Lambda creates, describes and deletes the function's interfaces with the execution role
        (AWSLambdaVPCAccessExecutionRole's actions). Creation is scoped to these subnets and the functions'
        security group; the interfaces' own ids are unknown until Lambda creates them, so actions on them
        are scoped by the ``ec2:Subnet`` they live in. The Describe actions have no resource-level scope.
        """
        context = self._context
        placed = self._serving("lambda")
        interfaces = pulumi.Output.concat(
            f"arn:{PARTITION}:ec2:{context.region}:", context.account_id, ":network-interface/*"
        )
        subnet_arns = tuple(self._subnet_arns[placed])
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
            subnet_ids=tuple(self._subnet_ids[placed]),
            security_group_ids=(self.functions_security_group_id,),
            grant=grant,
        )

    def _serving(self, role: str) -> str:
        """The role whose subnets serve ``role``: itself, or the one-role layout's ``private``."""
        if role not in ROLES and role != SINGLE_ROLE:
            raise ValueError(f"role: '{role}' is not a subnet role; roles are {list(ROLES)}")
        if self.roles == (SINGLE_ROLE,):
            return SINGLE_ROLE
        if role not in self.roles:
            raise ValueError(
                f"role: network '{self._name}' has no '{role}' subnets (its roles: {', '.join(self.roles)}); "
                "add the role to NetworkArgs.subnet_roles"
            )
        return role

    def _tags(self, name: str) -> dict[str, str]:
        """The stack's tags and a ``Name`` (what the VPC console lists)."""
        return {**self._context.tags, "Name": name}

    def _security_group(self, name: str, purpose: str, description: str) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(
            f"{name}-{purpose}",
            name=self._context.name(name, purpose),
            description=description,
            vpc_id=self.vpc_id,
            tags=self._tags(self._context.name(name, purpose)),
            opts=self.child(),
        )

    def _own_vpc(self, name: str, args: NetworkArgs) -> list[pulumi.Input[str]]:
        """The VPC, its emptied default security group and the subnets; the route tables that get the
        gateway endpoints' routes."""
        self.vpc = ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_support=True,  # private DNS of the interface endpoints needs both
            enable_dns_hostnames=True,
            tags=self._tags(self._context.name(name)),
            opts=self.child(),
        )
        self.vpc_id = self.vpc.id
        ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=self.vpc_id,
            tags=self._tags(self._context.name(name, "default")),
            opts=self.child(),
        )
        subnets, tables = self._private_subnets(name, args)
        self._subnet_ids = {role: [s.id for s in role_subnets] for role, role_subnets in subnets.items()}
        self._subnet_arns = {role: [s.arn for s in role_subnets] for role, role_subnets in subnets.items()}
        return [t.id for role in self.roles if role in GATEWAY_ROLES for t in tables[role]]

    def _brought_vpc(self, existing: ExistingVpc) -> list[pulumi.Input[str]]:
        """The owner's VPC and subnets, as given; their route tables get the gateway endpoints' routes."""
        self.vpc_id = pulumi.Output.from_input(existing.vpc_id)
        self._subnet_ids = {role: list(ids) for role, ids in existing.subnet_ids.items()}
        self._subnet_arns = {
            role: [self._context.arn("ec2", f"subnet/{subnet}") for subnet in ids]
            for role, ids in existing.subnet_ids.items()
        }
        return list(existing.route_table_ids)

    def _private_subnets(
        self, name: str, args: NetworkArgs
    ) -> tuple[dict[str, list[ec2.Subnet]], dict[str, list[ec2.RouteTable]]]:
        """The subnets of every role, each with a route table of its own (one per subnet)."""
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
        subnets: dict[str, list[ec2.Subnet]] = {}
        tables: dict[str, list[ec2.RouteTable]] = {}
        for role, blocks in args.layout().items():
            subnets[role], tables[role] = [], []
            for index, (zone, block) in enumerate(zip(offered, blocks, strict=False)):
                label = f"{role}-{index + 1}"
                subnet = ec2.Subnet(
                    f"{name}-{label}",
                    vpc_id=self.vpc_id,
                    cidr_block=block,
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags=self._tags(self._context.name(name, label)),
                    opts=self.child(),
                )
                table = ec2.RouteTable(
                    f"{name}-{label}-routes",
                    vpc_id=self.vpc_id,  # only the implicit local route: no internet, no NAT
                    tags=self._tags(self._context.name(name, label)),
                    opts=self.child(),
                )
                ec2.RouteTableAssociation(
                    f"{name}-{label}-routes", subnet_id=subnet.id, route_table_id=table.id, opts=self.child()
                )
                subnets[role].append(subnet)
                tables[role].append(table)
        return subnets, tables

    def _pulls_images(self, service: str) -> str | None:
        """The region whose ECR image layers the ``s3`` endpoint serves where nodes pull images, else None."""
        if service == "s3" and "ecr.dkr" in self.interface_services:
            return self._context.region
        return None

    def _endpoint(
        self,
        name: str,
        service: str,
        *,
        route_table_ids: list[pulumi.Input[str]] | None = None,
        security_group_id: pulumi.Output[str] | None = None,
    ) -> ec2.VpcEndpoint:
        context = self._context
        gateway = route_table_ids is not None
        policy = (
            pulumi.Output.from_input(context.account_id).apply(
                lambda account: _endpoint_policy(service, account, image_layers=self._pulls_images(service))
            )
            if service in POLICY_SERVICES
            else None
        )
        return ec2.VpcEndpoint(
            f"{name}-{service.replace('.', '-')}",
            vpc_id=self.vpc_id,
            service_name=f"com.amazonaws.{context.region}.{service}",
            vpc_endpoint_type="Gateway" if gateway else "Interface",
            route_table_ids=route_table_ids,
            subnet_ids=None if gateway else self.subnet_ids_of("endpoints"),
            security_group_ids=None if gateway else [security_group_id],
            private_dns_enabled=None if gateway else True,
            policy=policy,
            tags=self._tags(context.name(name, service)),
            opts=self.child(),
        )

    def _rules(self, name: str, existing: ExistingVpc | None) -> None:
        """Every rule there is; a security group without rules of a direction denies it."""
        functions = self.functions_security_group
        egress: list[tuple[str, int, dict[str, pulumi.Input[str]], str]] = [
            (
                f"to-{target}",
                PORTS[target],
                {"referenced_security_group_id": group.id},
                "HTTPS to the interface endpoints" if target == "endpoints" else "PostgreSQL to the database",
            )
            for target, group in self._targets.items()
        ]
        egress += [
            (
                f"to-{service}",
                HTTPS,
                {"prefix_list_id": endpoint.prefix_list_id},
                f"HTTPS to {service} (gateway endpoint)",
            )
            for service, endpoint in self.gateway_endpoints.items()
        ]
        egress += [
            (
                f"to-{group}",
                HTTPS,
                {"referenced_security_group_id": group},
                "HTTPS to the VPC's own interface endpoints",
            )
            for group in (existing.endpoint_security_group_ids if existing else ())
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
        for target in self._targets:
            self._admit("functions", functions.id, target)

    def _admit(
        self, peer: str, security_group_id: pulumi.Input[str], target: str
    ) -> vpc.SecurityGroupIngressRule:
        """``target``'s group admits ``security_group_id`` on the target's port, and nothing else."""
        self._admitted.add((peer, target))
        port = PORTS[target]
        return vpc.SecurityGroupIngressRule(
            f"{self._name}-{target}-from-{peer}",
            security_group_id=self._targets[target].id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=security_group_id,
            description=f"{'HTTPS' if port == HTTPS else 'PostgreSQL'} from the {peer}",
            opts=self.child(),
        )

    def _flow_logs(self, name: str, context: AwsContext, args: NetworkArgs) -> None:
        assert self.vpc is not None  # flow logs are the owner's in a brought VPC
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


def _endpoint_policy(service: str, account: str, *, image_layers: str | None = None) -> str:
    """Any action, but only by this account's principals (and on its resources where they all are).

    ``image_layers``: the region whose ECR image layers the S3 endpoint must also serve - ECR keeps them in
    an AWS-owned bucket (``prod-<region>-starport-layer-bucket``, the minimum ECR documents for pulls through
    an S3 gateway endpoint), which the own-resources condition would otherwise refuse to every node."""
    condition = {"aws:PrincipalAccount": account}
    if service in OWN_RESOURCES_ONLY:
        condition["aws:ResourceAccount"] = account
    statements: list[dict[str, object]] = [
        {
            "Sid": "ThisAccountOnly",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": condition},
        }
    ]
    if image_layers is not None:
        statements.append(
            {
                "Sid": "EcrImageLayers",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:{PARTITION}:s3:::prod-{image_layers}-starport-layer-bucket/*",
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
