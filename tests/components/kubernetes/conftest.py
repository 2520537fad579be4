"""Shared fixtures: the cloud-agnostic Kubernetes blocks recorded once per session."""

from __future__ import annotations

import pytest
from k8s_programs import agent_program, record_with_cluster

from core.graph import ResourceGraph


@pytest.fixture(scope="session")
def agent_graph() -> ResourceGraph:
    """The recorded graph of :func:`agent_program`."""
    return record_with_cluster(agent_program)
