"""Secrets: the Key Vault that holds every secret the agents need (and nothing else holds them).

Access is RBAC only (no access policies), so who can read a secret is visible and granted in one
place: :meth:`Secrets.grant_secrets_read`. Soft delete and purge protection make a deleted vault or
secret recoverable for the retention period — nobody, including an attacker with Owner, can destroy
them sooner.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, keyvault

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity
from components.azure.private_link import PrivateLinkTarget
from components.azure.roles import assign_role
from components.base import Component


@dataclass(frozen=True)
class SecretsArgs:
    """Settings of the vault.

    ``soft_delete_retention_days`` (default 90, the maximum): how long a deleted vault or secret stays
    recoverable. With purge protection on it is also how long the vault's name stays taken after
    ``pulumi destroy``. Azure accepts 7 to 90 and the value cannot change once the vault exists.
    """

    soft_delete_retention_days: int = 90

    def __post_init__(self) -> None:
        if not 7 <= self.soft_delete_retention_days <= 90:
            raise ValueError(
                f"soft_delete_retention_days must be between 7 and 90, got {self.soft_delete_retention_days}"
            )


class Secrets(Component):
    """A Key Vault with RBAC authorization, soft delete and purge protection (``agentstage:azure:Secrets``).

    Network: with ``context.isolated`` public access is off, the firewall denies by default and no
    trusted Azure service may bypass it - nothing in the stack reads the vault through such a service
    (agents read it over the private endpoint, ``private_link_targets``). Otherwise the vault is
    reachable publicly (``defaultAction: Allow``): serverless agents without VNet integration call it
    from Azure's shared outbound addresses, which no firewall rule can pin down; every request still
    needs an Entra ID token and an RBAC role on this vault, and trusted Azure services may bypass.

    Outputs: ``vault_id``, ``vault_name`` and ``vault_uri`` (what the runtime's secret client uses).
    """

    def __init__(
        self, name: str, context: AzureContext, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azure", "Secrets", name, opts)
        self._name = name
        self._context = context
        vault_name = context.naming.name("key_vault", name)
        vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=vault_name,
            resource_group_name=context.resource_group_name,
            location=context.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=context.tenant_id,
                sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=args.soft_delete_retention_days,
                enable_purge_protection=True,
                public_network_access=context.public_network_access,
                network_acls=_firewall(context.isolated),
            ),
            tags=dict(context.tags),
            opts=self.child(),
        )
        send_diagnostics(f"{name}-vault", context=context, resource_id=vault.id, parent=self)
        self.vault_id: pulumi.Output[str] = vault.id
        self.vault_name: pulumi.Output[str] = vault_name
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            PrivateLinkTarget(name, vault.id, "vault", "privatelink.vaultcore.azure.net"),
        )
        # Derived from the name (public-cloud DNS) so it is known before deployment and in offline plans.
        self.vault_uri: pulumi.Output[str] = pulumi.Output.concat("https://", vault_name, ".vault.azure.net/")
        self.register_outputs(
            {"vault_id": self.vault_id, "vault_name": self.vault_name, "vault_uri": self.vault_uri}
        )

    def grant_secrets_read(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` read secret values: **Key Vault Secrets User** on this vault.

        Reads secret values in this vault only; it cannot write, delete, purge or manage access.
        """
        return assign_role(
            f"{self._name}-secrets-read-{identity.label}",
            context=self._context,
            scope=self.vault_id,
            role="Key Vault Secrets User",
            identity=identity,
            parent=self,
        )


def _firewall(isolated: bool) -> keyvault.NetworkRuleSetArgs:
    """Deny with no bypass when isolated; otherwise allow (see :class:`Secrets` for why)."""
    if isolated:
        return keyvault.NetworkRuleSetArgs(
            default_action=keyvault.NetworkRuleAction.DENY, bypass=keyvault.NetworkRuleBypassOptions.NONE
        )
    return keyvault.NetworkRuleSetArgs(
        default_action=keyvault.NetworkRuleAction.ALLOW,
        bypass=keyvault.NetworkRuleBypassOptions.AZURE_SERVICES,
    )
