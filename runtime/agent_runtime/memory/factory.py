"""Open the configured stores: ``settings.state_backend`` for conversations, ``vector_backend`` for vectors.

Backend modules are imported only when chosen, so a deployment pays at cold start only for the client
library it uses (redis, psycopg, azure-cosmos or boto3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..settings_contract import SettingsContract, env_name
from .base import ConversationStore, VectorStore

if TYPE_CHECKING:
    from ..settings import Settings

BackendField = Literal["state_backend", "vector_backend"]

# The setting that says where each server backend's service is.
_LOCATION_FIELD = {"redis": "redis_url", "postgres": "postgres_dsn", "cosmos": "cosmos_endpoint"}


class MemoryConfigurationError(ValueError):
    """The memory settings are incomplete or inconsistent."""


async def open_stores(settings: Settings) -> tuple[ConversationStore, VectorStore]:
    """Connect both stores (creating schemas where allowed); the caller closes them.

    Settings are checked before any connection is made, so a misconfiguration fails with the name of the
    missing environment variable rather than a connection error.
    """
    if settings.embedding_dimensions < 1:
        raise MemoryConfigurationError(f"{env_name('embedding_dimensions')} must be at least 1")
    for field in ("state_backend", "vector_backend"):
        if getattr(settings, field) in _LOCATION_FIELD:  # DynamoDB tables have default names
            _location(settings, field)
    conversations = await _open_conversations(settings)
    try:
        vectors = await _open_vectors(settings)
    except BaseException:
        await conversations.close()
        raise
    return conversations, vectors


def _location(settings: Settings, backend_field: BackendField) -> str:
    """The URL / DSN / endpoint the chosen backend needs, or an error naming both environment variables."""
    backend = getattr(settings, backend_field)
    field = _LOCATION_FIELD[backend]
    value = getattr(settings, field)
    if not value:
        raise MemoryConfigurationError(
            f"{env_name(backend_field)}={backend} needs {env_name(field)}: "
            f"{SettingsContract.model_fields[field].description}"
        )
    return value


async def _open_conversations(s: Settings) -> ConversationStore:
    match s.state_backend:
        case "sqlite":
            from .sqlite import SqliteConversationStore

            return await SqliteConversationStore.open(s.sqlite_path)
        case "redis":
            from .redis import RedisConversationStore

            return await RedisConversationStore.connect(_location(s, "state_backend"))
        case "postgres":
            from .postgres import PostgresConversationStore
            from .postgres_iam import postgres_auth

            return await PostgresConversationStore.connect(
                _location(s, "state_backend"), auth=postgres_auth(s)
            )
        case "cosmos":
            from .cosmos import CosmosConversationStore

            return await CosmosConversationStore.connect(
                _location(s, "state_backend"),
                s.cosmos_database,
                client_id=s.identity_client_id,
                container=s.cosmos_conversations_container,
            )
        case "dynamodb":
            from .dynamodb import DynamoDBConversationStore

            return await DynamoDBConversationStore.connect(
                s.dynamodb_conversations_table, region=s.aws_region
            )
    raise MemoryConfigurationError(f"unknown {env_name('state_backend')}: {s.state_backend!r}")


async def _open_vectors(s: Settings) -> VectorStore:
    dimensions = s.embedding_dimensions
    match s.vector_backend:
        case "sqlite":
            from .sqlite import SqliteVectorStore

            return await SqliteVectorStore.open(s.sqlite_path, dimensions)
        case "redis":
            from .redis import RedisVectorStore

            return await RedisVectorStore.connect(_location(s, "vector_backend"), dimensions)
        case "postgres":
            from .postgres import PostgresVectorStore
            from .postgres_iam import postgres_auth

            return await PostgresVectorStore.connect(
                _location(s, "vector_backend"), dimensions, auth=postgres_auth(s)
            )
        case "cosmos":
            from .cosmos import CosmosVectorStore

            return await CosmosVectorStore.connect(
                _location(s, "vector_backend"),
                s.cosmos_database,
                dimensions,
                client_id=s.identity_client_id,
                container=s.cosmos_memories_container,
            )
        case "dynamodb":
            from .dynamodb import DynamoDBVectorStore

            return await DynamoDBVectorStore.connect(
                s.dynamodb_memories_table, dimensions, region=s.aws_region
            )
    raise MemoryConfigurationError(f"unknown {env_name('vector_backend')}: {s.vector_backend!r}")
