"""Open the configured task store (the state backend's, ``state_backend``) and the task service on it.

Backend modules are imported only when chosen, so a deployment pays only for the client it uses.
"""

from __future__ import annotations

import asyncio

from agent_runtime.agents import AgentCatalog
from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_name
from agent_runtime.tasks.model import TaskStore
from agent_runtime.tasks.service import TaskService


def check_task_settings(settings: Settings) -> None:
    """:class:`ConfigurationError` unless the state backend can hold task records; contacts nothing.

    Tasks need a store that every worker replica shares, with compare-and-set: SQLite (the embedded
    file, shared by the API and local workers), Redis, Cosmos DB or DynamoDB (``dynamodb_tasks_table``).
    PostgreSQL deployments keep conversations there but have no task store yet.
    """
    match settings.state_backend:
        case "sqlite":
            return
        case "redis" if not settings.redis_url:
            raise ConfigurationError(
                f"{env_name('state_backend')}=redis needs {env_name('redis_url')} for task records"
            )
        case "cosmos" if not settings.cosmos_endpoint:
            raise ConfigurationError(
                f"{env_name('state_backend')}=cosmos needs {env_name('cosmos_endpoint')} for task records"
            )
        case "redis" | "cosmos" | "dynamodb":
            return
    raise ConfigurationError(
        f"tasks need {env_name('state_backend')}=sqlite, redis, cosmos or dynamodb "
        f"(it is {settings.state_backend!r})"
    )


async def open_task_store(settings: Settings) -> TaskStore:
    """The task store of the state backend (:func:`check_task_settings` says which can hold tasks)."""
    check_task_settings(settings)
    match settings.state_backend:
        case "redis":
            from agent_runtime.tasks.store_redis import RedisTaskStore

            assert settings.redis_url is not None  # checked above
            return await RedisTaskStore.connect(settings.redis_url)
        case "cosmos":
            from agent_runtime.tasks.store_cosmos import CosmosTaskStore

            assert settings.cosmos_endpoint is not None  # checked above
            return await CosmosTaskStore.connect(
                settings.cosmos_endpoint,
                settings.cosmos_database,
                container=settings.cosmos_tasks_container,
                client_id=settings.identity_client_id,
            )
        case "dynamodb":
            from agent_runtime.tasks.store_dynamodb import DynamoDBTaskStore

            return await DynamoDBTaskStore.connect(settings.dynamodb_tasks_table, region=settings.aws_region)
    from agent_runtime.tasks.store_sqlite import SqliteTaskStore

    return await SqliteTaskStore.open(settings.sqlite_path)


async def open_task_service(settings: Settings, catalog: AgentCatalog) -> TaskService:
    """The task store and the message bus (``bus_backend``) behind one :class:`TaskService`."""
    from agent_runtime.bus.factory import open_bus

    bus = open_bus(settings)  # contacts nothing: settings errors surface before the store is opened
    return TaskService(await open_task_store(settings), bus, settings, catalog)


class SharedTaskService:
    """The process's one :class:`TaskService`, opened on first use and shared by everything that needs it.

    The API's task endpoints, the orchestrator's delegations, the worker and the platform-pushed hosts
    all reach tasks through this, so a process holds one store client and one bus connection. It opens
    lazily because most requests never touch a task, and because a deployment whose state backend
    cannot hold tasks (PostgreSQL) must still serve chat: it gets a clear error only when it uses tasks.
    Concurrent first users wait for the same opening; a failed opening is retried by the next user.
    """

    def __init__(self, settings: Settings, catalog: AgentCatalog) -> None:
        self._settings = settings
        self._catalog = catalog
        self._opening: asyncio.Future[TaskService] | None = None

    async def get(self) -> TaskService:
        opening = self._opening
        if opening is None or (opening.done() and opening.exception() is not None):
            opening = self._opening = asyncio.ensure_future(open_task_service(self._settings, self._catalog))
        return await asyncio.shield(opening)

    async def close(self) -> None:
        """Close the service if it was opened; safe to call when it never was (or failed to open)."""
        opening, self._opening = self._opening, None
        if opening is None:
            return
        try:
            service = await opening
        except Exception:  # noqa: BLE001 - the failure was reported to whoever awaited the opening
            return
        await service.close()
