"""Container registry: where the agent runtime image lives, pulled by the cluster's kubelet identity alone.

No credential exists to leak: the admin user and anonymous pull are off, so the only way to pull is an
Entra ID token of a principal holding AcrPull - and :meth:`ContainerRegistry.grant_pull` is meant for the
cluster's kubelet identity only (agent pods never pull; the node does, for them). Pushing is the build
pipeline's job, granted outside the stack ("AcrPush" to the pipeline's identity).

Isolated stages need Premium: only Premium has private endpoints, so only Premium can turn public
network access off; it also disables image export, so an image cannot leave through the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import authorization, containerregistry

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.private_link import PrivateLinkTarget
from components.azure.roles import assign_role_to_principal
from components.base import Component

PRIVATE_DNS_ZONE = "privatelink.azurecr.io"


@dataclass(frozen=True)
class ContainerRegistryArgs:
    """``sku``: ``None`` (default) picks Premium in isolated stages and Standard otherwise; Standard in an
    isolated stage is refused (no private endpoints). ``untagged_retention_days`` (Premium): untagged
    manifests - superseded builds - are purged after this many days. ``zone_redundant`` (Premium, set at
    creation only, in regions with availability zones).
    """

    sku: Literal["Standard", "Premium"] | None = None
    untagged_retention_days: int = 7
    zone_redundant: bool = False

    def resolved_sku(self, isolated: bool) -> str:
        sku = self.sku or ("Premium" if isolated else "Standard")
        if sku not in ("Standard", "Premium"):
            raise ValueError(f"sku must be 'Standard' or 'Premium', got {sku!r}")
        if isolated and sku != "Premium":
            raise ValueError(
                "an isolated stage needs the Premium registry: only Premium has private endpoints"
            )
        if self.zone_redundant and sku != "Premium":
            raise ValueError("zone_redundant needs the Premium registry")
        if not 0 <= self.untagged_retention_days <= 365:
            raise ValueError(f"untagged_retention_days must be 0-365, got {self.untagged_retention_days}")
        return sku


class ContainerRegistry(Component):
    """Azure Container Registry (``agentstage:azure:ContainerRegistry``).

    Outputs: ``registry_id``, ``login_server`` (``<name>.azurecr.io``: prefix the image reference with it).
    ``private_link_targets``: the registry endpoint for the network block (Premium only).
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: ContainerRegistryArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "ContainerRegistry", name, opts)
        args = args or ContainerRegistryArgs()
        sku = args.resolved_sku(context.isolated)
        premium = sku == "Premium"
        self.label = name
        self._context = context
        registry = containerregistry.Registry(
            name,
            registry_name=context.naming.name("container_registry", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            sku=containerregistry.SkuArgs(name=sku),
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            public_network_access=context.public_network_access,
            # Trusted Azure services may not bypass the firewall of an isolated registry.
            network_rule_bypass_options="None" if context.isolated else "AzureServices",
            data_endpoint_enabled=premium,
            zone_redundancy="Enabled" if args.zone_redundant else None,
            policies=containerregistry.PoliciesArgs(
                retention_policy=containerregistry.RetentionPolicyArgs(
                    days=args.untagged_retention_days, status="enabled"
                ),
                # Export can only be disabled where public access is off (ARM rejects it otherwise).
                export_policy=containerregistry.ExportPolicyArgs(status="disabled")
                if context.isolated
                else None,
            )
            if premium
            else None,
            tags=dict(context.tags),
            opts=self.child(),
        )
        self.registry_id: pulumi.Output[str] = registry.id
        self.login_server: pulumi.Output[str] = registry.login_server
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            (PrivateLinkTarget("registry", registry.id, "registry", PRIVATE_DNS_ZONE),) if premium else ()
        )
        send_diagnostics(name, context=context, resource_id=registry.id, parent=self)
        self.register_outputs({"registry_id": self.registry_id, "login_server": self.login_server})

    def grant_pull(
        self, principal_id: pulumi.Input[str], name: str = "kubelet"
    ) -> authorization.RoleAssignment:
        """AcrPull (read images and their metadata, nothing else) on this registry, for the kubelet identity.

        Pass ``KubernetesCluster.kubelet_object_id``: the node pulls images for its pods, so the kubelet
        identity is the only principal that needs it; agent identities never get registry access.
        """
        return assign_role_to_principal(
            f"{self.label}-acr-pull-{name}",
            context=self._context,
            scope=self.registry_id,
            role="AcrPull",
            principal_id=principal_id,
            description=f"AcrPull for the {name} identity",
            parent=self,
        )
