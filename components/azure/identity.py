"""Managed identity: how every deployed agent authenticates, instead of keys.

agentstage uses user-assigned identities rather than system-assigned ones: their principal exists
before the compute that uses it, so role assignments (storage for the Function App's deployment
package, the model, the vault) are in place when the app first starts instead of racing it.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import managedidentity

from components.azure.context import AzureContext
from components.base import Component


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
