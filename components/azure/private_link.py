"""What a data service offers to a private network: the shared shape of a private endpoint target.

Each component that can be reached privately exposes its :class:`PrivateLinkTarget` values; the network
component turns each into a private endpoint in the endpoints subnet plus the DNS zone group that makes
the service's public host name resolve to the private address. Keeping the (group id, zone) pair next to
the service that needs it means a new service cannot be added without saying how it is reached privately.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class PrivateLinkTarget:
    """One private endpoint to create.

    ``name`` is a short purpose used in resource names ("models", "state-store", "bus-namespace");
    ``group_id`` is the sub-resource the endpoint connects to ("account", "searchService", "Sql",
    "namespace", "vault", "blob", "queue", "table", "registry", "sites"); ``dns_zone`` is the private DNS
    zone that resolves it ("privatelink.openai.azure.com", ...).
    """

    name: str
    resource_id: pulumi.Input[str]
    group_id: str
    dns_zone: str
