"""Every data service in an isolated stage: public access off, and reachable through its private endpoint.

One program builds each service with the context isolated and connects every target it exposes to a
network, as the enterprise blueprint does. The table says, per service, where its public switch lives
and which sub-resource and DNS zone its endpoint must use; a service that leaves public access on,
names the wrong group id or zone, or exposes no target fails here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from components.azure.messaging import Messaging, MessagingArgs
from components.azure.models import Models, ModelsArgs
from components.azure.network import Network, NetworkArgs
from components.azure.search import VectorSearch, VectorSearchArgs
from components.azure.secrets import Secrets, SecretsArgs
from components.azure.state_store import StateStore, StateStoreArgs
from core.graph import Resource, ResourceGraph

ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
ZONE = "azure-native:privatedns:PrivateZone"
LINK = "azure-native:privatedns:VirtualNetworkLink"


@dataclass(frozen=True)
class Service:
    type: str
    public_access: str
    endpoints: tuple[tuple[str, str], ...]
    firewall: tuple[str, str] | None = None


SERVICES = {
    "models": Service(
        "azure-native:cognitiveservices:Account",
        "properties.publicNetworkAccess",
        (("account", "privatelink.openai.azure.com"),),
        firewall=("properties.networkAcls.defaultAction", "Deny"),
    ),
    "search": Service(
        "azure-native:search:Service",
        "publicNetworkAccess",
        (("searchService", "privatelink.search.windows.net"),),
    ),
    "state": Service(
        "azure-native:cosmosdb:DatabaseAccount",
        "publicNetworkAccess",
        (("Sql", "privatelink.documents.azure.com"),),
    ),
    "bus": Service(
        "azure-native:servicebus:Namespace",
        "publicNetworkAccess",
        (("namespace", "privatelink.servicebus.windows.net"),),
    ),
    "vault": Service(
        "azure-native:keyvault:Vault",
        "properties.publicNetworkAccess",
        (("vault", "privatelink.vaultcore.azure.net"),),
        firewall=("properties.networkAcls.defaultAction", "Deny"),
    ),
}


def _program(context, _identity):
    network = Network("network", context, NetworkArgs())
    services = (
        Models("models", context, ModelsArgs()),
        VectorSearch("search", context, VectorSearchArgs()),
        StateStore("state", context, StateStoreArgs(embedding_dimensions=1536)),
        Messaging("bus", context, MessagingArgs(sku="Premium")),
        Secrets("vault", context, SecretsArgs()),
    )
    for service in services:
        for target in service.private_link_targets:
            network.connect(target)


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_program, isolated=True)


def _service(graph: ResourceGraph, name: str) -> Resource:
    found = [r for r in graph.of_type(SERVICES[name].type) if r.parent and r.parent.endswith(f"::{name}")]
    assert len(found) == 1, f"expected one {SERVICES[name].type} in '{name}', found {len(found)}"
    return found[0]


@pytest.mark.parametrize("name", SERVICES)
def test_public_access_is_off(graph, name):
    service, expected = _service(graph, name), SERVICES[name]
    assert service.get(expected.public_access) == "Disabled", service.urn
    if expected.firewall:
        path, action = expected.firewall
        assert service.get(path) == action, f"{service.urn}: {path}"


@pytest.mark.parametrize("name", SERVICES)
def test_each_endpoint_has_the_right_group_and_its_zone_and_link(graph, name):
    service, expected = _service(graph, name), SERVICES[name]
    connections = [
        (endpoint, connection)
        for endpoint in graph.of_type(ENDPOINT)
        for connection in endpoint.get("privateLinkServiceConnections")
        if connection["privateLinkServiceId"] == service.mock_id
    ]
    zones = {zone.mock_id: zone.get("privateZoneName") for zone in graph.of_type(ZONE)}
    linked = {link.get("privateZoneName") for link in graph.of_type(LINK)}
    found = []
    for endpoint, connection in connections:
        (group,) = [
            g
            for g in graph.of_type(ZONE_GROUP)
            if g.get("privateEndpointName") == endpoint.get("privateEndpointName")
        ]
        (zone_id,) = [config["privateDnsZoneId"] for config in group.get("privateDnsZoneConfigs")]
        assert zones[zone_id] in linked, f"{endpoint.urn}: zone {zones[zone_id]} is not linked to the VNet"
        found += [(group_id, zones[zone_id]) for group_id in connection["groupIds"]]
    assert sorted(found) == sorted(expected.endpoints), service.urn


def test_messaging_refuses_isolation_on_standard(build):
    with pytest.raises(Exception, match="agentstage:messaging.sku"):
        build(lambda context, _: Messaging("bus", context, MessagingArgs(sku="Standard")), isolated=True)
