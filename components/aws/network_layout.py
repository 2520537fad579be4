"""The shape of the stage's network, checked before anything is created: which subnets it has (per role, per
zone, carved from the VPC's range), which endpoints, and the VPC a stack brings instead of creating one.

:class:`components.aws.network.Network` builds what :class:`NetworkArgs` describes; keeping the description
and its checks here leaves that module with the resources alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.aws_endpoints import GATEWAY_SERVICES

SINGLE_ROLE = "private"
"""The default layout's one role: its subnets hold functions, endpoints and database alike."""
ROLES = ("lambda", "nodes", "endpoints", "data")
"""The roles of a layout with subnets per role, in the order their shares of the VPC are laid out."""
GATEWAY_ROLES = frozenset({SINGLE_ROLE, "lambda", "nodes"})
"""Roles whose workloads call S3 and DynamoDB: only their route tables get the gateway endpoints' routes."""
SUBNET_BITS = 4
"""Each subnet is 1/16 of the VPC (a /20 of a /16): room for the workloads' interfaces and for subnets
added later."""
MIN_SUBNET_PREFIX = {"nodes": 24}
"""The smallest subnet a role takes where its workload needs more than AWS's smallest (a /28): every pod
takes an address from its node's subnet, and each node keeps a spare interface's addresses warm."""
RESERVED_ADDRESSES = 5
"""AWS reserves the first four and the last address of every subnet."""
MIN_ZONES, MAX_ZONES = 2, 6
_SERVICE = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")


def _aws_id(prefix: str) -> re.Pattern[str]:
    """An EC2 id: ``<prefix>-`` and 8 (older resources) or 17 hexadecimal digits."""
    return re.compile(rf"{prefix}-(?:[0-9a-f]{{8}}|[0-9a-f]{{17}})")


_VPC_ID, _SUBNET_ID, _ROUTE_TABLE_ID = _aws_id("vpc"), _aws_id("subnet"), _aws_id("rtb")
_SECURITY_GROUP_ID, _ENDPOINT_ID = _aws_id("sg"), _aws_id("vpce")


@dataclass(frozen=True)
class ExistingVpc:
    """A VPC that already exists (bring your own), in the stack's account and region: the functions' grant
    names its subnets by ARN in this account (a subnet shared from another account is not supported).

    - ``vpc_id``; ``subnet_ids``: role -> its private subnets, at least two, in different zones (an
      interface endpoint takes one subnet per zone);
    - ``route_table_ids``: the route tables of the workloads' subnets, where the stack adds its S3 and
      DynamoDB gateway endpoints' routes (they must not route to such an endpoint already: a route table
      takes one per service);
    - ``endpoint_ids``: service -> the id of an interface endpoint with private DNS the VPC already has;
      the stack creates none for it, and names it in its data perimeters;
    - ``endpoint_security_group_ids``: the security groups of those endpoints, which the functions may
      send HTTPS to (the owner's groups must admit the VPC's HTTPS, as hub endpoints usually do).
    """

    vpc_id: str
    subnet_ids: Mapping[str, Sequence[str]]
    route_table_ids: Sequence[str]
    endpoint_ids: Mapping[str, str] = field(default_factory=dict)
    endpoint_security_group_ids: Sequence[str] = ()

    def __post_init__(self) -> None:
        _check_id("existing.vpc_id", self.vpc_id, _VPC_ID)
        for role, subnets in self.subnet_ids.items():
            _check_ids(f"existing.subnet_ids['{role}']", subnets, _SUBNET_ID)
            if len(subnets) < MIN_ZONES:
                raise ValueError(
                    f"existing.subnet_ids['{role}']: {len(subnets)} subnet(s); give one in each of at least "
                    f"{MIN_ZONES} availability zones"
                )
        listed = [subnet for subnets in self.subnet_ids.values() for subnet in subnets]
        shared = sorted({subnet for subnet in listed if listed.count(subnet) > 1})
        if shared:
            raise ValueError(
                f"existing.subnet_ids: {shared} are listed more than once; a subnet has one role"
            )
        _check_ids("existing.route_table_ids", self.route_table_ids, _ROUTE_TABLE_ID)
        if not self.route_table_ids:
            raise ValueError(
                "existing.route_table_ids: the route tables of the workloads' subnets are needed for the S3 "
                "and DynamoDB gateway endpoints"
            )
        gateway = sorted(set(self.endpoint_ids) & set(GATEWAY_SERVICES))
        if gateway:
            raise ValueError(
                f"existing.endpoint_ids: {gateway} are gateway services; the stack routes them through its "
                "own gateway endpoints on existing.route_table_ids"
            )
        for service, endpoint_id in self.endpoint_ids.items():
            _check_id(f"existing.endpoint_ids['{service}']", endpoint_id, _ENDPOINT_ID)
        _check_ids(
            "existing.endpoint_security_group_ids", self.endpoint_security_group_ids, _SECURITY_GROUP_ID
        )
        if bool(self.endpoint_ids) != bool(self.endpoint_security_group_ids):
            raise ValueError(
                "existing.endpoint_security_group_ids: give the security groups of the VPC's own endpoints "
                "exactly when existing.endpoint_ids names some (the functions send HTTPS to them)"
            )


@dataclass(frozen=True)
class NetworkArgs:
    """The network's layout, endpoints and paths.

    - ``cidr`` of the VPC (private, /16 to /24) and ``zones``: availability zones, one subnet per role in
      each; ``subnet_roles``: ``("private",)`` (one subnet per zone for everything) or some of ``ROLES``;
    - ``interface_services``: the AWS services the workloads call (endpoint names: ``sqs``,
      ``secretsmanager``, ``bedrock-runtime``); S3 and DynamoDB always have gateway endpoints;
    - ``database``: whether the stage has a PostgreSQL database in the network (its security group and
      the paths to it exist only then);
    - ``existing``: use this VPC instead of creating one (``cidr``, ``zones`` and
      ``flow_log_retention_days`` then do not apply: its layout and flow logs are the owner's).
    """

    cidr: str = "10.20.0.0/16"
    zones: int = 2
    interface_services: Sequence[str] = ()
    flow_log_retention_days: int = 30
    subnet_roles: Sequence[str] = (SINGLE_ROLE,)
    database: bool = True
    existing: ExistingVpc | None = None

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
        self._check_services()
        self._check_roles()
        if self.existing is None:
            self.layout()
        else:
            self._check_existing(self.existing)

    @property
    def created_interface_services(self) -> tuple[str, ...]:
        """The interface endpoints the stack creates: those the existing VPC does not already have."""
        existing = self.existing.endpoint_ids if self.existing else {}
        return tuple(service for service in self.interface_services if service not in existing)

    def layout(self) -> dict[str, tuple[str, ...]]:
        """Each role's subnet CIDRs, one per zone (see the module docstring), after checking they fit."""
        roles = tuple(self.subnet_roles)
        blocks = list(ipaddress.ip_network(self.cidr).subnets(prefixlen_diff=SUBNET_BITS))
        share = len(blocks) // len(roles)
        if self.zones > share:
            raise ValueError(
                f"zones: {self.zones} zones of {len(roles)} subnet roles need {self.zones * len(roles)} subnets; "
                f"the VPC is cut into {len(blocks)}, {share} per role: use at most {share} zones"
            )
        prefix = blocks[0].prefixlen
        usable = blocks[0].num_addresses - RESERVED_ADDRESSES
        for role in roles:
            if prefix > MIN_SUBNET_PREFIX.get(role, 28):
                bigger = MIN_SUBNET_PREFIX[role] - SUBNET_BITS
                raise ValueError(
                    f"cidr: '{self.cidr}' gives each subnet a /{prefix} ({usable} addresses); the '{role}' "
                    f"subnets need at least a /{MIN_SUBNET_PREFIX[role]}: use a /{bigger} or larger VPC"
                )
        endpoints = len(self.created_interface_services)
        if endpoints > usable:
            raise ValueError(
                f"cidr: '{self.cidr}' gives each subnet {usable} usable addresses, too few for the "
                f"{endpoints} interface endpoints (one address each in every endpoints subnet); use a larger VPC"
            )
        return {
            role: tuple(str(block) for block in blocks[index * share : index * share + self.zones])
            for index, role in enumerate(roles)
        }

    def _check_services(self) -> None:
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

    def _check_roles(self) -> None:
        if isinstance(self.subnet_roles, str):
            raise TypeError(
                f"subnet_roles: a list of roles such as {list(ROLES)}, not the text '{self.subnet_roles}'"
            )
        roles = list(self.subnet_roles)
        if roles == [SINGLE_ROLE]:
            return
        unknown = [role for role in roles if role not in ROLES]
        if not roles or unknown:
            raise ValueError(
                f"subnet_roles: {roles} must be ['{SINGLE_ROLE}'] or some of {list(ROLES)}"
                + (f"; unknown: {unknown}" if unknown else "")
            )
        repeated = sorted({role for role in roles if roles.count(role) > 1})
        if repeated:
            raise ValueError(f"subnet_roles: {repeated} are listed more than once")
        if not {"lambda", "nodes"} & set(roles):
            raise ValueError("subnet_roles: name a workload role ('lambda' or 'nodes') that uses the network")
        if self.interface_services and "endpoints" not in roles:
            raise ValueError("subnet_roles: the interface endpoints need an 'endpoints' role; add it")
        if self.database and "data" not in roles:
            raise ValueError(
                "subnet_roles: the database (database=True) needs a 'data' role; add it, or set database=False"
            )

    def _check_existing(self, existing: ExistingVpc) -> None:
        if set(existing.subnet_ids) != set(self.subnet_roles):
            raise ValueError(
                f"existing.subnet_ids: give the subnets of exactly the roles {list(self.subnet_roles)} "
                f"(subnet_roles), not {sorted(existing.subnet_ids)}"
            )
        unused = sorted(set(existing.endpoint_ids) - set(self.interface_services))
        if unused:
            raise ValueError(
                f"existing.endpoint_ids: {unused} are not in interface_services; name only the endpoints the "
                "stage calls (their ids go into its data perimeters)"
            )


def _check_id(field_name: str, value: str, pattern: re.Pattern[str]) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        example = pattern.pattern.split("-")[0] + "-0123456789abcdef0"
        raise ValueError(f"{field_name}: {value!r} is not an id such as {example}")


def _check_ids(field_name: str, values: Sequence[str], pattern: re.Pattern[str]) -> None:
    if isinstance(values, str):
        raise TypeError(f"{field_name}: a list of ids, not the text '{values}'")
    for value in values:
        _check_id(field_name, value, pattern)
