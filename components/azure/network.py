"""Network: the enterprise stage's private network, and the private endpoints that put data services on it.

Four subnets, one per role (``ROLES``), each with its own network security group:

- ``aks``: the cluster's node IPs. With Azure CNI overlay pods take addresses from a private overlay
  range, not the VNet, so the subnet only has to hold nodes: a quarter of the address space, at most a
  /20 (4,091 nodes; an AKS cluster stops at 5,000).
- ``gateway``: API Management Standard v2 *outbound* VNet integration; delegated to
  ``Microsoft.Web/serverFarms``, dedicated to one instance, at least a /27 (/24 recommended, for scaling)
  and with a security group attached (learn.microsoft.com/azure/api-management/integrate-vnet-outbound:
  "no specific rules are required"). The gateway's own endpoint stays public.
- ``functions``: Flex Consumption VNet integration; delegated to ``Microsoft.App/environments`` (Flex
  runs on Container Apps infrastructure; other plans use ``Microsoft.Web/serverFarms``) and dedicated to it.
  The subscription must have the ``Microsoft.App`` resource provider registered for that delegation.
- ``endpoints``: the private endpoints of every data service.

Each security group denies inbound traffic from the Internet service tag explicitly (priority 4096, the
last custom slot), so the intent survives anyone adding broader allow rules above it. Nothing else is
needed: both integration subnets carry outbound traffic only (the gateway's and the apps' inbound
traffic never enters them), private endpoints are reached from inside the VNet (Azure's default
``AllowVnetInBound``), and AKS nodes only pull work from the queue. A public ``LoadBalancer`` service
on the cluster would need its own allow rule.

Private DNS. A private endpoint is only used when the service's public host name resolves to its
private address, so :meth:`Network.connect` always adds a DNS zone group pointing at the service's
``privatelink.*`` zone. The zone and its VNet link are created once per zone name, on first use, in
the stack's resource group; in a hub-and-spoke estate the hub usually owns the zones (linked to the hub's
resolver), so a zone given in ``NetworkArgs.dns_zone_ids`` is used as is and nothing is created for it.

Bring your own VNet (:class:`ExistingNetwork`): no VNet, subnet or security group is created and the
given subnets are used as they are; they must already have the delegations above. Private endpoints
must be in the VNet's region and subscription, so the VNet must be in the stack's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import network, privatedns

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.private_link import PrivateLinkTarget
from components.base import Component

ROLES = ("aks", "gateway", "functions", "endpoints")
"""The subnets every network has, in the order they are laid out and created."""

DELEGATIONS: Mapping[str, str] = {
    "gateway": "Microsoft.Web/serverFarms",
    "functions": "Microsoft.App/environments",
}
"""The service each integration subnet is delegated to; the other roles are not delegated."""

MAX_AKS_PREFIX = 20
"""The largest default AKS subnet: a /20."""

MIN_SIZE: Mapping[str, int] = {"gateway": 27}
"""The longest prefix a role's subnet may have, where its service documents a minimum."""

DENY_INTERNET_PRIORITY = 4096

_SUBNET_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$",
    re.IGNORECASE,
)
_ZONE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/privateDnsZones/([^/]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ExistingNetwork:
    """A VNet that already exists (bring your own): its resource id and one subnet id per role.

    Every role in ``ROLES`` needs a subnet of this VNet; ``gateway`` and ``functions`` must already
    be delegated as ``DELEGATIONS`` says.
    """

    vnet_id: str
    subnet_ids: Mapping[str, str]

    def __post_init__(self) -> None:
        missing = [role for role in ROLES if role not in self.subnet_ids]
        unknown = sorted(set(self.subnet_ids) - set(ROLES))
        if missing or unknown:
            raise ValueError(
                f"existing network: subnet_ids needs exactly the roles {', '.join(ROLES)}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        for role, subnet_id in self.subnet_ids.items():
            if not _SUBNET_ID.match(subnet_id) or not subnet_id.lower().startswith(
                f"{self.vnet_id.rstrip('/').lower()}/subnets/"
            ):
                raise ValueError(
                    f"existing network: the '{role}' subnet '{subnet_id}' is not a subnet of {self.vnet_id}"
                )


@dataclass(frozen=True)
class NetworkArgs:
    """The VNet to create, or the one to use, and the private DNS zones that already exist.

    - ``address_space`` (default ``10.40.0.0/16``): the VNet's CIDR block.
    - ``subnet_prefixes``: role -> CIDR, overriding the default layout (see :func:`default_layout`)
      for the roles given; every prefix must lie inside ``address_space`` and not overlap another.
    - ``existing``: use this VNet and its subnets instead of creating any (``address_space`` and
      ``subnet_prefixes`` then don't apply).
    - ``dns_zone_ids``: private DNS zone name (``privatelink.openai.azure.com``) -> the resource id of a
      zone that already exists and is already linked where resolution happens (the hub). No zone and no
      VNet link is created for these.
    """

    address_space: str = "10.40.0.0/16"
    subnet_prefixes: Mapping[str, str] = field(default_factory=dict)
    existing: ExistingNetwork | None = None
    dns_zone_ids: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for zone, zone_id in self.dns_zone_ids.items():
            match = _ZONE_ID.match(zone_id)
            if not zone.startswith("privatelink.") or not match or match.group(1).lower() != zone.lower():
                raise ValueError(
                    f"dns_zone_ids: '{zone}' must be a privatelink.* zone name mapped to the resource id of "
                    f"that zone (.../providers/Microsoft.Network/privateDnsZones/{zone}), got '{zone_id}'"
                )
        if self.existing is not None:
            if self.subnet_prefixes:
                raise ValueError(
                    "subnet_prefixes cannot be combined with an existing network: its subnets exist"
                )
            return
        self.layout()

    def layout(self) -> dict[str, str]:
        """Each role's subnet prefix: the defaults for ``address_space``, overridden by ``subnet_prefixes``."""
        space = _network(self.address_space, "address_space")
        unknown = sorted(set(self.subnet_prefixes) - set(ROLES))
        if unknown:
            raise ValueError(
                f"subnet_prefixes: unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}"
            )
        given = {
            role: _network(prefix, f"subnet_prefixes['{role}']")
            for role, prefix in self.subnet_prefixes.items()
        }
        chosen = given if len(given) == len(ROLES) else {**default_layout(space), **given}
        for role, prefix in chosen.items():
            if not prefix.subnet_of(space):
                raise ValueError(f"the '{role}' subnet {prefix} is outside the address space {space}")
            if prefix.prefixlen > MIN_SIZE.get(role, 32):
                raise ValueError(
                    f"the '{role}' subnet {prefix} is too small; it needs at least a /{MIN_SIZE[role]}"
                )
        ordered = [(role, chosen[role]) for role in ROLES]
        for i, (role, prefix) in enumerate(ordered):
            for other, other_prefix in ordered[i + 1 :]:
                if prefix.overlaps(other_prefix):
                    raise ValueError(
                        f"the '{role}' subnet {prefix} overlaps the '{other}' subnet {other_prefix}"
                    )
        return {role: str(prefix) for role, prefix in ordered}


def default_layout(space: ipaddress.IPv4Network) -> dict[str, ipaddress.IPv4Network]:
    """AKS takes the first quarter of ``space`` (at most a /20); gateway, functions, endpoints the next three /24s.

    Every space from /16 to /22 fits: a /22 becomes four /24s.
    """
    if space.prefixlen > 22:
        raise ValueError(
            f"address_space {space} is too small for the default layout (a /22 or larger); "
            "give subnet_prefixes for every role"
        )
    aks = next(space.subnets(new_prefix=max(space.prefixlen + 2, MAX_AKS_PREFIX)))
    first = int(aks.broadcast_address) + 1
    rest = [ipaddress.IPv4Network((first + 256 * i, 24)) for i in range(3)]
    return {"aks": aks, **dict(zip(("gateway", "functions", "endpoints"), rest, strict=True))}


def _network(value: str, setting: str) -> ipaddress.IPv4Network:
    try:
        parsed = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError(
            f"{setting} must be an IPv4 CIDR block such as 10.40.0.0/16, got '{value}'"
        ) from None
    if parsed.prefixlen > 29:
        raise ValueError(f"{setting} {value} is smaller than Azure's smallest subnet, a /29")
    return parsed


class Network(Component):
    """A VNet, a subnet and security group per role, private endpoints on demand (``agentstage:azure:Network``).

    Outputs: ``vnet_id`` and ``subnet_ids`` (role -> subnet id, for every role in ``ROLES``).
    """

    def __init__(
        self, name: str, context: AzureContext, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azure", "Network", name, opts)
        self._name, self._context = name, context
        # Zone name -> zone id: the ones given, then each one created on first use.
        self._zone_ids: dict[str, pulumi.Input[str]] = dict(args.dns_zone_ids)
        self._endpoints: dict[str, tuple[PrivateLinkTarget, network.PrivateEndpoint]] = {}
        if args.existing is not None:
            self.vnet_id: pulumi.Output[str] = pulumi.Output.from_input(args.existing.vnet_id)
            self.subnet_ids: Mapping[str, pulumi.Output[str]] = {
                role: pulumi.Output.from_input(args.existing.subnet_ids[role]) for role in ROLES
            }
        else:
            self.vnet_id, self.subnet_ids = self._create(args)
        self.register_outputs({"vnet_id": self.vnet_id, "subnet_ids": dict(self.subnet_ids)})

    def connect(self, target: PrivateLinkTarget) -> network.PrivateEndpoint:
        """A private endpoint for ``target`` in the endpoints subnet, registered in its private DNS zone.

        Connecting the same target twice returns the first endpoint, so a component may connect its own
        targets (to order work after them) and a blueprint may still connect every component's targets.
        """
        key = f"{target.name}-{target.group_id.lower()}"
        if key in self._endpoints:
            connected, endpoint = self._endpoints[key]
            if connected != target:
                raise ValueError(
                    f"network '{self._name}': a different target named '{target.name}' is already connected "
                    f"to '{target.group_id}'; give each target a distinct name"
                )
            return endpoint
        context = self._context
        endpoint = network.PrivateEndpoint(
            f"{self._name}-{key}",
            private_endpoint_name=context.naming.name("private_endpoint", key),
            resource_group_name=context.resource_group_name,
            location=context.location,
            subnet=network.SubnetArgs(id=self.subnet_ids["endpoints"]),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name=key, private_link_service_id=target.resource_id, group_ids=[target.group_id]
                )
            ],
            tags=dict(context.tags),
            opts=self.child(),
        )
        network.PrivateDnsZoneGroup(
            f"{self._name}-{key}-dns",
            private_endpoint_name=endpoint.name,
            resource_group_name=context.resource_group_name,
            private_dns_zone_group_name="default",
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(
                    name=_label(target.dns_zone), private_dns_zone_id=self._zone_id(target.dns_zone)
                )
            ],
            opts=self.child(),
        )
        self._endpoints[key] = (target, endpoint)
        return endpoint

    def _zone_id(self, zone: str) -> pulumi.Input[str]:
        """The id of private DNS zone ``zone``: as given, or created and linked to the VNet on first use."""
        if zone not in self._zone_ids:
            context = self._context
            created = privatedns.PrivateZone(
                f"{self._name}-{_label(zone)}",
                private_zone_name=zone,
                resource_group_name=context.resource_group_name,
                location="global",
                tags=dict(context.tags),
                opts=self.child(),
            )
            # Resolution only: endpoints register through their zone groups, never by VM auto-registration.
            privatedns.VirtualNetworkLink(
                f"{self._name}-{_label(zone)}-link",
                private_zone_name=created.name,
                virtual_network_link_name=context.naming.plain("dns_link", self._name),
                resource_group_name=context.resource_group_name,
                location="global",
                virtual_network=privatedns.SubResourceArgs(id=self.vnet_id),
                registration_enabled=False,
                tags=dict(context.tags),
                opts=self.child(),
            )
            self._zone_ids[zone] = created.id
        return self._zone_ids[zone]

    def _create(self, args: NetworkArgs) -> tuple[pulumi.Output[str], dict[str, pulumi.Output[str]]]:
        """The VNet, then each role's security group and subnet, one subnet at a time.

        Subnets are separate resources (the VNet omits ``subnets``, which Azure and the provider then
        leave alone on updates). They are created in sequence because Azure rejects concurrent changes
        to the subnets of one VNet (``AnotherOperationInProgress``).
        """
        context, name = self._context, self._name
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=context.naming.name("vnet", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[args.address_space]),
            tags=dict(context.tags),
            opts=self.child(),
        )
        send_diagnostics(f"{name}-vnet", context=context, resource_id=vnet.id, parent=self)
        subnet_ids: dict[str, pulumi.Output[str]] = {}
        previous: pulumi.Resource = vnet
        for role, prefix in args.layout().items():
            nsg = self._security_group(role)
            delegation = DELEGATIONS.get(role)
            previous = network.Subnet(
                f"{name}-{role}",
                subnet_name=context.naming.plain("subnet", role),
                virtual_network_name=vnet.name,
                resource_group_name=context.resource_group_name,
                address_prefix=prefix,
                network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
                delegations=[
                    network.DelegationArgs(name=delegation.replace("/", "."), service_name=delegation)
                ]
                if delegation
                else None,
                # Endpoints honour the subnet's security group (and route tables) only when asked to.
                private_endpoint_network_policies=(
                    network.VirtualNetworkPrivateEndpointNetworkPolicies.ENABLED
                    if role == "endpoints"
                    else None
                ),
                opts=self.child(depends_on=[previous]),
            )
            subnet_ids[role] = previous.id
        return vnet.id, subnet_ids

    def _security_group(self, role: str) -> network.NetworkSecurityGroup:
        context = self._context
        nsg = network.NetworkSecurityGroup(
            f"{self._name}-{role}-nsg",
            network_security_group_name=context.naming.name("nsg", f"{self._name}-{role}"),
            resource_group_name=context.resource_group_name,
            location=context.location,
            security_rules=[
                network.SecurityRuleArgs(
                    name="deny-internet-inbound",
                    description="Nothing in this subnet is reached from the Internet (see components/azure/network.py).",
                    priority=DENY_INTERNET_PRIORITY,
                    direction=network.SecurityRuleDirection.INBOUND,
                    access=network.SecurityRuleAccess.DENY,
                    protocol=network.SecurityRuleProtocol.ASTERISK,
                    source_address_prefix="Internet",
                    source_port_range="*",
                    destination_address_prefix="*",
                    destination_port_range="*",
                )
            ],
            tags=dict(context.tags),
            opts=self.child(),
        )
        # Security groups emit rule-match events and counters, but no platform metrics.
        send_diagnostics(
            f"{self._name}-{role}-nsg", context=context, resource_id=nsg.id, parent=self, metrics=False
        )
        return nsg


def _label(zone: str) -> str:
    """``privatelink.openai.azure.com`` -> ``privatelink-openai-azure-com``: a name usable in resource names."""
    return zone.replace(".", "-")
