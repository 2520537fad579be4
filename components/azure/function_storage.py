"""The storage account behind one Flex Consumption app: host storage and the deployment container.

The Functions host keeps its keys, leases and timers in ``AzureWebJobsStorage``; Flex Consumption also
loads the app's package from a blob container (``functionAppConfig.deployment.storage``). One dedicated
account serves both, so the app's identity can be granted data access on an account that holds nothing
else. Shared keys are off (``storage_account``): the host, the deployment and operators all authenticate
with Entra ID.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import storage

from components.azure.context import AzureContext
from components.azure.private_link import PrivateLinkTarget
from components.azure.storage_account import secure_storage_account

DEPLOYMENT_CONTAINER = "app-package"
PRIVATE_SERVICES = ("blob", "queue")
"""The storage services the app reaches privately (Microsoft's Flex templates make the same choice): blob
holds the host's keys, leases and the deployment package; queue serves queue triggers and bindings on
``AzureWebJobsStorage``, which the host adds beside the HTTP function - without its endpoint they would
fail once public access is off. Flex mounts no Azure Files share, and tables are only used by Durable
Functions, which the runtime does not use."""


@dataclass(frozen=True)
class FunctionStorage:
    """The account, its private deployment container, that container's URL (what Flex loads from), and
    the account's private endpoint targets (one per service in ``PRIVATE_SERVICES``)."""

    account: storage.StorageAccount
    container: storage.BlobContainer
    container_url: pulumi.Output[str]
    private_link_targets: tuple[PrivateLinkTarget, ...]


def create_function_storage(
    name: str, *, context: AzureContext, purpose: str, parent: pulumi.Resource
) -> FunctionStorage:
    """Create the account, the deployment container and their diagnostic settings under ``parent``."""
    account = secure_storage_account(f"{name}-storage", context=context, purpose=purpose, parent=parent)
    container = storage.BlobContainer(
        f"{name}-package-container",
        account_name=account.name,
        container_name=DEPLOYMENT_CONTAINER,
        resource_group_name=context.resource_group_name,
        public_access=storage.PublicAccess.NONE,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    container_url = pulumi.Output.concat(account.primary_endpoints.blob, DEPLOYMENT_CONTAINER)
    targets = tuple(
        PrivateLinkTarget(f"{name}-storage", account.id, service, f"privatelink.{service}.core.windows.net")
        for service in PRIVATE_SERVICES
    )
    return FunctionStorage(
        account=account, container=container, container_url=container_url, private_link_targets=targets
    )
