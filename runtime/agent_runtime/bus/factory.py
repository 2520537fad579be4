"""The bus a runtime's settings name, with a clear error for every setting that is missing."""

from __future__ import annotations

from agent_runtime.azure_credential import async_credential
from agent_runtime.errors import ConfigurationError
from agent_runtime.settings import Settings
from agent_runtime.settings_contract import env_name

from .base import MessageBus
from .sqlite import SqliteBus


def open_bus(settings: Settings) -> MessageBus:
    """The adapter of ``settings.bus_backend``; cloud SDKs are imported only by the backend that uses them.

    Nothing is contacted here: an unreachable bus shows as a :class:`~.base.BusError` on first use.
    """
    backend = settings.bus_backend
    deliveries = settings.bus_max_delivery_count
    if backend == "sqlite":
        return SqliteBus(settings.bus_sqlite_path, max_delivery_count=deliveries)
    if backend == "servicebus":
        from .servicebus import ServiceBusBus

        namespace = _required(settings, "servicebus_namespace")
        return ServiceBusBus.from_namespace(
            namespace, async_credential(settings.identity_client_id), max_delivery_count=deliveries
        )
    if backend == "storage_queue":
        from .storage_queue import StorageQueueBus

        if settings.storage_queue_connection_string is not None:
            return StorageQueueBus.from_connection_string(
                settings.storage_queue_connection_string.get_secret_value(),
                max_delivery_count=deliveries,
                create_queues=settings.bus_create_queues,
            )
        account_url = _required(settings, "storage_queue_account_url")
        return StorageQueueBus.from_account_url(
            account_url, async_credential(settings.identity_client_id), max_delivery_count=deliveries
        )
    return _sqs(settings)


def _sqs(settings: Settings) -> MessageBus:
    from botocore.exceptions import NoRegionError

    from .sqs import SqsBus

    try:
        return SqsBus.connect(
            region=settings.aws_region,
            endpoint_url=settings.sqs_endpoint_url,
            max_delivery_count=settings.bus_max_delivery_count,
            create_queues=settings.bus_create_queues,
        )
    except NoRegionError as exc:
        variable = env_name("aws_region")
        raise ConfigurationError(
            f"bus_backend 'sqs' needs a region: set {variable} (or AWS_REGION)", field=variable
        ) from exc


def _required(settings: Settings, field: str) -> str:
    value = getattr(settings, field)
    if not value:
        variable = env_name(field)
        raise ConfigurationError(f"bus_backend '{settings.bus_backend}' needs {variable}", field=variable)
    return str(value)
