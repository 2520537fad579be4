"""Open the configured knowledge index and document source (``knowledge_backend``, ``knowledge_source``).

The index opens on first use, not at startup: an agent may start before the ingestion worker has created
the AI Search index or the PostgreSQL tables, and a runtime whose agents never search should not pay for the
connection. Only a runtime with ``knowledge_manage_index`` (the ingestion worker) creates them; others check
they exist. Backend modules are imported only when chosen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import urlsplit

from agent_runtime.azure_credential import async_credential
from agent_runtime.errors import ConfigurationError
from agent_runtime.knowledge.base import KnowledgeIndex
from agent_runtime.knowledge.documents import DocumentSource
from agent_runtime.knowledge.events import DocumentIdOf
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_name

_LOCATION_FIELD = {"postgres": "postgres_dsn", "aisearch": "search_endpoint"}


class KnowledgeAccess:
    """The process's knowledge index, opened once on first :meth:`get` and closed with the services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index: KnowledgeIndex | None = None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.knowledge_backend != "none"

    async def get(self) -> KnowledgeIndex:
        if self._index is None:
            async with self._lock:
                if self._index is None:
                    self._index = await open_index(self.settings)
        return self._index

    async def close(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            await index.close()


KNOWLEDGE_TOOL = "knowledge_search"


def check_knowledge_settings(settings: Settings, tools_in_use: Iterable[str]) -> None:
    """At startup: an agent that searches knowledge needs an index, and the chosen backend its location,
    so a misconfiguration stops the deployment with the variable to set rather than failing a request."""
    if settings.knowledge_backend == "none":
        if KNOWLEDGE_TOOL in tools_in_use:
            raise ConfigurationError(
                f"an agent uses the {KNOWLEDGE_TOOL} tool but {env_name('knowledge_backend')}=none: set it to "
                "sqlite, postgres or aisearch, or remove the tool from the agent",
                field=env_name("knowledge_backend"),
            )
        return
    location = _LOCATION_FIELD.get(settings.knowledge_backend)
    if location is not None:
        _required(settings, location)
    if settings.knowledge_backend == "postgres" and settings.postgres_iam_auth:
        from agent_runtime.memory.postgres_iam import iam_settings

        iam_settings(settings)


async def open_index(settings: Settings) -> KnowledgeIndex:
    """Connect the configured backend; settings are checked before any connection is made."""
    dimensions = settings.embedding_dimensions
    match settings.knowledge_backend:
        case "sqlite":
            from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex

            return await SqliteKnowledgeIndex.open(settings.sqlite_path, dimensions)
        case "postgres":
            from agent_runtime.knowledge.postgres import PostgresKnowledgeIndex
            from agent_runtime.memory.postgres_iam import postgres_auth

            return await PostgresKnowledgeIndex.connect(
                _required(settings, _LOCATION_FIELD["postgres"]),
                dimensions,
                schema=settings.knowledge_schema,
                manage_index=settings.knowledge_manage_index,
                auth=postgres_auth(settings),
            )
        case "aisearch":
            from agent_runtime.knowledge.aisearch import AISearchKnowledgeIndex

            return await AISearchKnowledgeIndex.connect(
                _required(settings, _LOCATION_FIELD["aisearch"]),
                settings.knowledge_index,
                dimensions,
                client_id=settings.identity_client_id,
                manage_index=settings.knowledge_manage_index,
            )
    raise ConfigurationError(
        f"{env_name('knowledge_backend')}=none: this runtime has no knowledge index; set it to sqlite, "
        "postgres or aisearch",
        field=env_name("knowledge_backend"),
    )


def open_source(settings: Settings) -> tuple[DocumentSource, DocumentIdOf]:
    """The ingestion worker's document source, and how an event's container/bucket and object name map
    to one of its documents (``None``: the event is about something outside the source)."""
    location = _required(settings, "knowledge_source")
    scheme = urlsplit(location).scheme
    if scheme == "s3":
        from agent_runtime.knowledge.cloud_sources import S3Source

        s3 = S3Source.from_url(location, region=settings.aws_region)
        return s3, lambda bucket, key: s3.document_id_of(key) if bucket == s3.bucket else None
    if scheme in ("http", "https"):
        from agent_runtime.knowledge.cloud_sources import BlobSource

        credential = async_credential(settings.identity_client_id)
        container = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
        blob = BlobSource.from_url(location, credential)
        return blob, lambda name, blob_name: blob_name if name == container else None
    from agent_runtime.knowledge.folder_source import FolderSource

    return FolderSource(location), lambda _container, name: name


def _required(settings: Settings, field: str) -> str:
    value = getattr(settings, field)
    if not value:
        raise ConfigurationError(
            f"{env_name('knowledge_backend')}={settings.knowledge_backend} needs {env_name(field)}: "
            f"{Settings.model_fields[field].description}",
            field=env_name(field),
        )
    return str(value)
