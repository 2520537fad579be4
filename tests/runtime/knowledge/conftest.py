"""Fixtures of the knowledge index tests; the PostgreSQL server (``postgres_dsn``) is tests/runtime's."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests and fixtures run on asyncio only (anyio would otherwise also try every other backend)."""
    return "asyncio"
