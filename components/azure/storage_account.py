"""The storage account every agentstage block that keeps blobs builds on, and its diagnostics.

Function App host storage (``function_storage``) and the knowledge source's documents (``knowledge``) differ
in what they hold, not in how the account is secured, so the secure defaults live here once: Entra ID only
(shared keys off, OAuth by default in the portal), no anonymous blob access, no cross-tenant replication,
HTTPS and TLS 1.2, and in isolated stages no public network at all.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import storage

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics


def secure_storage_account(
    name: str,
    *,
    context: AzureContext,
    purpose: str,
    parent: pulumi.Resource,
    sku: storage.SkuName = storage.SkuName.STANDARD_LRS,
) -> storage.StorageAccount:
    """A StorageV2 account named for ``purpose`` that takes Entra ID tokens only, with its diagnostics.

    The firewall is explicit: deny by default where the stage is isolated (private endpoints only);
    trusted Azure services (diagnostics, backup) may always pass. Identity is required either way.
    """
    account = storage.StorageAccount(
        name,
        account_name=context.naming.name("storage", purpose),
        resource_group_name=context.resource_group_name,
        location=context.location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=sku),
        allow_shared_key_access=False,
        default_to_o_auth_authentication=True,
        allow_blob_public_access=False,
        allow_cross_tenant_replication=False,
        enable_https_traffic_only=True,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        public_network_access=context.public_network_access,
        network_rule_set=storage.NetworkRuleSetArgs(
            default_action=storage.DefaultAction.DENY if context.isolated else storage.DefaultAction.ALLOW,
            bypass=storage.Bypass.AZURE_SERVICES,
        ),
        tags=dict(context.tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # The account itself only emits metrics; reads and writes are logged on its blob service.
    send_diagnostics(name, context=context, resource_id=account.id, parent=parent, log_category_groups=())
    send_diagnostics(
        f"{name}-blob",
        context=context,
        resource_id=pulumi.Output.concat(account.id, "/blobServices/default"),
        parent=parent,
    )
    return account
