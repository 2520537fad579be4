"""One Cosmos DB account as the runtime reaches it: the async client and its Entra ID credential.

The runtime never holds an account key: it uses the user-assigned managed identity named by
``identity_client_id`` when set, and ``DefaultAzureCredential`` otherwise (``az login`` on a laptop). The
conversation, memory, task and ledger stores each open their container through a :class:`CosmosAccount`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_runtime.azure_credential import async_credential
from agent_runtime.memory.common import CloseOnce

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.cosmos.aio import ContainerProxy, CosmosClient


class CosmosAccount:
    """The Cosmos client and its credential, closed together and once."""

    def __init__(self, client: CosmosClient, credential: AsyncTokenCredential):
        self.client = client
        self._credential = credential
        self.close = CloseOnce(self._release)

    @classmethod
    def connect(cls, endpoint: str, client_id: str | None) -> CosmosAccount:
        # Lazy imports: only deployments that use Cosmos DB pay for them.
        from azure.cosmos.aio import CosmosClient

        credential = async_credential(client_id)
        return cls(CosmosClient(endpoint, credential=credential), credential)

    async def container(
        self, database: str, name: str, partition_key_path: str | list[str], **policies: Any
    ) -> tuple[ContainerProxy, dict[str, Any]]:
        """Open (or, where the identity may, create) a container; returns it with its properties. A list of
        paths is a hierarchical partition key."""
        from azure.cosmos import PartitionKey
        from azure.cosmos.exceptions import CosmosHttpResponseError

        key = (
            PartitionKey(path=partition_key_path, kind="MultiHash")
            if isinstance(partition_key_path, list)
            else PartitionKey(path=partition_key_path)
        )
        try:
            return await self.client.get_database_client(database).create_container_if_not_exists(
                id=name,
                partition_key=key,
                return_properties=True,
                **policies,
            )
        except CosmosHttpResponseError as error:
            if error.status_code in (403, 404):
                raise RuntimeError(
                    f"Cosmos DB container {database}/{name} does not exist and this identity cannot create it "
                    "(data-plane RBAC cannot create databases or containers): create it in the infrastructure "
                    f"with partition key {partition_key_path}"
                ) from error
            raise

    async def _release(self) -> None:
        await self.client.close()
        await self._credential.close()
