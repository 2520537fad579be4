"""Network on its own: subnets per role, a security group on each, and private endpoints with their DNS."""

from __future__ import annotations

import itertools

import pytest

from components.azure.network import ROLES, ExistingNetwork, Network, NetworkArgs
from components.azure.private_link import PrivateLinkTarget
from core.graph import Resource, ResourceGraph

VNET = "azure-native:network:VirtualNetwork"
SUBNET = "azure-native:network:Subnet"
NSG = "azure-native:network:NetworkSecurityGroup"
ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
ZONE = "azure-native:privatedns:PrivateZone"
LINK = "azure-native:privatedns:VirtualNetworkLink"

HUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-hub/providers/Microsoft.Network"
SPOKE_VNET = f"{HUB}/virtualNetworks/vnet-spoke"
SPOKE_SUBNETS = {role: f"{SPOKE_VNET}/subnets/snet-{role}" for role in ROLES}
HUB_OPENAI_ZONE = f"{HUB}/privateDnsZones/privatelink.openai.azure.com"

OPENAI = "privatelink.openai.azure.com"
BLOB = "privatelink.blob.core.windows.net"
QUEUE = "privatelink.queue.core.windows.net"
MODELS_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/oai-primary"
FALLBACK_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/oai-fallback"
STORAGE_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stagent"
TARGETS = (
    PrivateLinkTarget("primary", MODELS_ID, "account", OPENAI),
    PrivateLinkTarget("fallback", FALLBACK_ID, "account", OPENAI),
    PrivateLinkTarget("agent-storage", STORAGE_ID, "blob", BLOB),
    PrivateLinkTarget("agent-storage", STORAGE_ID, "queue", QUEUE),
)


def _factory(args: NetworkArgs, targets: tuple[PrivateLinkTarget, ...] = TARGETS, *, twice: bool = False):
    def factory(context, _identity):
        net = Network("network", context, args)
        endpoints = [net.connect(target) for target in targets]
        if twice:
            assert [net.connect(target) for target in targets] == endpoints
        return {"vnetId": net.vnet_id, "subnetIds": dict(net.subnet_ids)}

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory(NetworkArgs(), twice=True), isolated=True)


@pytest.fixture(scope="module")
def bring_your_own(build) -> ResourceGraph:
    args = NetworkArgs(
        existing=ExistingNetwork(vnet_id=SPOKE_VNET, subnet_ids=SPOKE_SUBNETS),
        dns_zone_ids={OPENAI: HUB_OPENAI_ZONE},
    )
    return build(_factory(args), isolated=True)


def _subnets(graph: ResourceGraph) -> dict[str, Resource]:
    return {subnet.name.removeprefix("network-"): subnet for subnet in graph.of_type(SUBNET)}


def _endpoint(graph: ResourceGraph, resource_id: str, group_id: str) -> Resource:
    found = [
        pe
        for pe in graph.of_type(ENDPOINT)
        for connection in pe.get("privateLinkServiceConnections")
        if connection["privateLinkServiceId"] == resource_id and connection["groupIds"] == [group_id]
    ]
    assert len(found) == 1, (
        f"expected one endpoint to {resource_id}/{group_id}, found {[r.urn for r in found]}"
    )
    return found[0]


def _zone_group(graph: ResourceGraph, endpoint: Resource) -> Resource:
    groups = [
        g
        for g in graph.of_type(ZONE_GROUP)
        if g.get("privateEndpointName") == endpoint.get("privateEndpointName")
    ]
    assert len(groups) == 1, f"{endpoint.urn}: expected one DNS zone group, found {len(groups)}"
    return groups[0]


def test_default_layout_gives_each_role_its_subnet_inside_the_address_space(graph, only):
    vnet = only(graph, VNET)
    assert vnet.get("addressSpace.addressPrefixes") == ["10.40.0.0/16"], vnet.urn
    subnets = _subnets(graph)
    assert {role: s.get("addressPrefix") for role, s in subnets.items()} == {
        "aks": "10.40.0.0/20",
        "gateway": "10.40.16.0/24",
        "functions": "10.40.17.0/24",
        "endpoints": "10.40.18.0/24",
    }
    for subnet in subnets.values():
        assert subnet.get("virtualNetworkName") == vnet.get("virtualNetworkName"), subnet.urn


def test_integration_subnets_are_delegated_to_their_service(graph):
    delegations = {role: s.get("delegations") for role, s in _subnets(graph).items()}
    assert [d["serviceName"] for d in delegations["gateway"]] == ["Microsoft.Web/serverFarms"]
    assert [d["serviceName"] for d in delegations["functions"]] == ["Microsoft.App/environments"]
    assert not delegations["aks"] and not delegations["endpoints"]


def test_every_subnet_has_its_own_security_group_denying_the_internet(graph):
    groups = {nsg.mock_id: nsg for nsg in graph.of_type(NSG)}
    attached = [subnet.get("networkSecurityGroup.id") for subnet in graph.of_type(SUBNET)]
    assert sorted(attached) == sorted(groups), "each subnet needs a security group of its own"
    for nsg in groups.values():
        rules = nsg.get("securityRules")
        inbound_from_internet = [
            r for r in rules if r["direction"] == "Inbound" and r["sourceAddressPrefix"] == "Internet"
        ]
        assert [(r["access"], r["destinationPortRange"], r["protocol"]) for r in inbound_from_internet] == [
            ("Deny", "*", "*")
        ], nsg.urn
        assert not [r for r in rules if r["access"] == "Allow"], f"{nsg.urn}: allows traffic explicitly"


def test_endpoints_subnet_applies_its_security_group_to_endpoints(graph):
    assert _subnets(graph)["endpoints"].get("privateEndpointNetworkPolicies") == "Enabled"


def test_subnets_are_created_one_at_a_time(graph, only):
    subnets = _subnets(graph)
    chain = [only(graph, VNET), *(subnets[role] for role in ROLES)]
    for before, after in itertools.pairwise(chain):
        assert before.urn in after.dependencies, f"{after.urn} does not wait for {before.urn}"


def test_diagnostics_cover_the_vnet_and_every_security_group(graph, only, build, assert_diagnostics):
    for target in (only(graph, VNET), *graph.of_type(NSG)):
        assert_diagnostics(graph, target, build.workspace_id)


def test_connect_puts_an_endpoint_in_the_endpoints_subnet_with_its_zone_and_link(graph, only):
    vnet = only(graph, VNET)
    endpoints_subnet = _subnets(graph)["endpoints"]
    for target in TARGETS:
        endpoint = _endpoint(graph, target.resource_id, target.group_id)
        assert endpoint.get("subnet.id") == endpoints_subnet.mock_id, endpoint.urn
        configs = _zone_group(graph, endpoint).get("privateDnsZoneConfigs")
        zones = [z for z in graph.of_type(ZONE) if [c["privateDnsZoneId"] for c in configs] == [z.mock_id]]
        assert len(zones) == 1, f"{endpoint.urn}: its zone group names no zone of this stack"
        assert zones[0].get("privateZoneName") == target.dns_zone, endpoint.urn
        assert zones[0].get("location") == "global", zones[0].urn
        links = [link for link in graph.of_type(LINK) if link.get("privateZoneName") == target.dns_zone]
        assert len(links) == 1, f"{target.dns_zone}: expected one VNet link, found {len(links)}"
        assert links[0].get("virtualNetwork.id") == vnet.mock_id, links[0].urn
        assert links[0].get("registrationEnabled") is False, links[0].urn
        assert links[0].get("location") == "global", links[0].urn


def test_one_zone_and_link_per_zone_name_however_many_endpoints_use_it(graph):
    assert len(graph.of_type(ENDPOINT)) == len(TARGETS), "connecting a target again must reuse its endpoint"
    assert sorted(z.get("privateZoneName") for z in graph.of_type(ZONE)) == sorted({OPENAI, BLOB, QUEUE})
    assert len(graph.of_type(LINK)) == 3


def test_a_different_target_under_a_connected_name_is_refused(build):
    clash = (TARGETS[0], PrivateLinkTarget("primary", FALLBACK_ID, "account", OPENAI))
    with pytest.raises(Exception, match="different target named 'primary'"):
        build(_factory(NetworkArgs(), clash))


def test_outputs_are_the_vnet_and_one_subnet_per_role(graph, only, outputs):
    subnets = _subnets(graph)
    assert outputs(graph) == {
        "vnetId": only(graph, VNET).mock_id,
        "subnetIds": {role: subnets[role].mock_id for role in ROLES},
    }


def test_bring_your_own_vnet_creates_no_network_and_uses_its_subnets(bring_your_own, outputs):
    for type_ in (VNET, SUBNET, NSG):
        assert not bring_your_own.of_type(type_), f"{type_} created for an existing VNet"
    assert outputs(bring_your_own) == {"vnetId": SPOKE_VNET, "subnetIds": SPOKE_SUBNETS}
    for endpoint in bring_your_own.of_type(ENDPOINT):
        assert endpoint.get("subnet.id") == SPOKE_SUBNETS["endpoints"], endpoint.urn
    for link in bring_your_own.of_type(LINK):
        assert link.get("virtualNetwork.id") == SPOKE_VNET, link.urn


def test_bring_your_own_zone_is_used_as_is(bring_your_own):
    assert sorted(z.get("privateZoneName") for z in bring_your_own.of_type(ZONE)) == [BLOB, QUEUE]
    assert sorted(link.get("privateZoneName") for link in bring_your_own.of_type(LINK)) == [BLOB, QUEUE]
    for target in TARGETS[:2]:
        group = _zone_group(bring_your_own, _endpoint(bring_your_own, target.resource_id, "account"))
        assert [c["privateDnsZoneId"] for c in group.get("privateDnsZoneConfigs")] == [HUB_OPENAI_ZONE]


def test_a_22_is_split_into_four_24s():
    assert NetworkArgs(address_space="10.50.4.0/22").layout() == {
        "aks": "10.50.4.0/24",
        "gateway": "10.50.5.0/24",
        "functions": "10.50.6.0/24",
        "endpoints": "10.50.7.0/24",
    }


def test_given_prefixes_override_the_layout():
    layout = NetworkArgs(subnet_prefixes={"aks": "10.40.64.0/18"}).layout()
    assert layout["aks"] == "10.40.64.0/18" and layout["gateway"] == "10.40.16.0/24"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"address_space": "10.40.0.0/33"}, "address_space must be an IPv4 CIDR block"),
        ({"address_space": "10.40.0.1/16"}, "address_space must be an IPv4 CIDR block"),
        ({"address_space": "10.40.0.0/23"}, "too small for the default layout"),
        (
            {"subnet_prefixes": {"aks": "10.41.0.0/20"}},
            "'aks' subnet 10.41.0.0/20 is outside the address space",
        ),
        ({"subnet_prefixes": {"gateway": "10.40.0.0/26"}}, "overlaps"),
        ({"subnet_prefixes": {"gateway": "10.40.200.0/28"}}, "'gateway' subnet 10.40.200.0/28 is too small"),
        ({"subnet_prefixes": {"bastion": "10.40.200.0/26"}}, "unknown role"),
        ({"subnet_prefixes": {"gateway": "10.40.200.0/30"}}, "smaller than Azure's smallest subnet"),
        ({"dns_zone_ids": {OPENAI: f"{HUB}/privateDnsZones/privatelink.search.windows.net"}}, "dns_zone_ids"),
        ({"dns_zone_ids": {"openai.azure.com": HUB_OPENAI_ZONE}}, "privatelink"),
        (
            {
                "existing": ExistingNetwork(vnet_id=SPOKE_VNET, subnet_ids=SPOKE_SUBNETS),
                "subnet_prefixes": {"aks": "10.40.0.0/20"},
            },
            "cannot be combined with an existing network",
        ),
    ],
)
def test_invalid_network_args_are_refused_with_the_reason(settings, message):
    with pytest.raises(ValueError, match=message):
        NetworkArgs(**settings)


def test_an_existing_network_needs_every_role_in_that_vnet():
    with pytest.raises(ValueError, match="missing: aks"):
        ExistingNetwork(vnet_id=SPOKE_VNET, subnet_ids={k: v for k, v in SPOKE_SUBNETS.items() if k != "aks"})
    elsewhere = {**SPOKE_SUBNETS, "endpoints": f"{HUB}/virtualNetworks/vnet-hub/subnets/snet-endpoints"}
    with pytest.raises(ValueError, match="'endpoints' subnet .* is not a subnet of"):
        ExistingNetwork(vnet_id=SPOKE_VNET, subnet_ids=elsewhere)
