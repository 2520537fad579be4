"""Managed identity: how every deployed agent authenticates, instead of keys.

agentstage uses user-assigned identities rather than system-assigned ones: their principal exists
before the compute that uses it, so role assignments (storage for the Function App's deployment
package, the model, the vault) are in place when the app first starts instead of racing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pulumi
from pulumi_azure_native import managedidentity

from components.azure.context import AzureContext
from components.base import Component


class Principal(Protocol):
    """Who a grant is for: ``label`` names the role assignment, ``principal_id`` is what ARM assigns to.

    Satisfied by :class:`ManagedIdentity` (every agentstage workload) and :class:`SystemIdentity` (an Azure
    service acting on the stage's behalf), so components grant either through the same ``grant_*`` methods.
    """

    @property
    def label(self) -> str: ...

    @property
    def principal_id(self) -> pulumi.Output[str]: ...


@dataclass(frozen=True)
class SystemIdentity:
    """The system-assigned identity of an Azure resource that acts on its own, such as an Event Grid system
    topic delivering events: it lives and dies with that resource, which no workload runs as."""

    label: str
    principal_id: pulumi.Output[str]


class ManagedIdentity(Component):
    """A user-assigned managed identity (``agentstage:azure:Identity``).

    Outputs: ``resource_id`` (to attach it to compute), ``principal_id`` (for role assignments) and
    ``client_id`` (what the runtime passes to azure-identity).
    """

    def __init__(self, name: str, context: AzureContext, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("azure", "Identity", name, opts)
        self.label = name
        identity = managedidentity.UserAssignedIdentity(
            name,
            resource_name_=context.naming.name("identity", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            tags=dict(context.tags),
            opts=self.child(),
        )
        self.resource_id: pulumi.Output[str] = identity.id
        self.principal_id: pulumi.Output[str] = identity.principal_id
        self.client_id: pulumi.Output[str] = identity.client_id
        self.register_outputs(
            {"resource_id": self.resource_id, "principal_id": self.principal_id, "client_id": self.client_id}
        )
