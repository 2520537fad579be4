"""Fixtures of the governance tests: a Redis server, a local Cosmos DB ledger (in-memory OpenTelemetry,
``otel``, and the page server for tools, ``pages``, are tests/runtime's)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from memory.conftest import redis_url  # noqa: F401  (the session's throwaway redis-server)

from agent_runtime.governance.ledger_cosmos import LEDGER_PARTITION_KEY
from agent_runtime.testing.cosmos import LocalCosmosServer
from agent_runtime.testing.identity import LocalManagedIdentity


@dataclass(frozen=True)
class CosmosLedgerAccount:
    """A local Cosmos DB account with the ledger container the state store component creates, and the
    managed-identity endpoint an App Service host gives the runtime (``environment``)."""

    url: str
    client_id: str
    environment: dict[str, str]


@pytest.fixture(scope="session")
def cosmos_ledger() -> Iterator[CosmosLedgerAccount]:
    with LocalCosmosServer() as cosmos, LocalManagedIdentity() as identity:
        cosmos.create_container("agentstage", "ledger", LEDGER_PARTITION_KEY, default_ttl=-1)
        yield CosmosLedgerAccount(cosmos.url, "00000000-0000-0000-0000-0000000000c0", identity.environment)
