"""The runtime's one way to an Entra ID token: its managed identity in Azure, the developer's login locally.

Every Azure client of the runtime (Cosmos DB, Service Bus, Storage, AI Search) authenticates with the
user-assigned managed identity named by ``identity_client_id`` when it is set, and with
``DefaultAzureCredential`` (``az login`` on a laptop) otherwise; never with keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential


def async_credential(client_id: str | None) -> AsyncTokenCredential:
    # Lazy import: only deployments that reach Azure pay for azure-identity.
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()
