"""Fixtures for the knowledge rules: an index that is searched, written by the ingestion worker alone, from a
locked-down source."""

from __future__ import annotations

import json
from typing import Any

from components.azure.role_ids import BUILTIN_ROLES
from core.graph import Resource
from rule_cases.base import Case, ref, res

WEB_APP = "azure-native:web:WebApp"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
SEARCH = "azure-native:search:Service"
STORAGE = "azure-native:storage:StorageAccount"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_PREFIX = "/subscriptions/0/providers/Microsoft.Authorization/roleDefinitions/"
AGENTS = json.dumps([{"name": "assistant", "model": "chat", "token_budget": 8000}])
ENDPOINT = "https://srch.search.windows.net"
SOURCE = "https://docs.blob.core.windows.net/documents"


def app(name: str, identity: Resource, **settings: str) -> Resource:
    """A Function App running as ``identity`` with ``settings`` (AGENTSTAGE_ names)."""
    return res(
        WEB_APP,
        name,
        {
            "identity": {"type": "UserAssigned", "userAssignedIdentities": [ref(identity)]},
            "siteConfig": {"appSettings": [{"name": k, "value": v} for k, v in settings.items()]},
        },
        dependencies=(identity.urn,),
    )


def grant(name: str, role: str, scope: Resource, identity: Resource) -> Resource:
    return res(
        ROLE_ASSIGNMENT,
        name,
        {
            "roleDefinitionId": ROLE_PREFIX + BUILTIN_ROLES[role],
            "scope": ref(scope),
            "principalId": "<unknown>",
        },
        dependencies=(identity.urn,),
    )


def _searched(endpoint: str) -> list[Resource]:
    identity = res(IDENTITY, "agent")
    agent = app(
        "agent-app",
        identity,
        AGENTSTAGE_AGENTS=AGENTS,
        AGENTSTAGE_KNOWLEDGE_BACKEND="aisearch",
        AGENTSTAGE_SEARCH_ENDPOINT=endpoint,
    )
    return [res(SEARCH, "search", {"searchServiceName": "srch"}), identity, agent]


def _written_by(ingest_queue: str | None) -> list[Resource]:
    """The index written by an identity whose runtime consumes ``ingest_queue`` (or runs agents instead)."""
    search = res(SEARCH, "search", {"searchServiceName": "srch"})
    identity = res(IDENTITY, "writer")
    settings: dict[str, Any] = (
        {"AGENTSTAGE_AGENTS": "[]", "AGENTSTAGE_INGEST_QUEUE": ingest_queue}
        if ingest_queue
        else {"AGENTSTAGE_AGENTS": AGENTS}
    )
    return [
        search,
        identity,
        app("writer-app", identity, **settings),
        grant("index-write", "Search Index Data Contributor", search, identity),
    ]


def _agent_granted(role: str) -> list[Resource]:
    search = res(SEARCH, "search", {"searchServiceName": "srch"})
    identity = res(IDENTITY, "agent")
    return [
        search,
        identity,
        app("agent-app", identity, AGENTSTAGE_AGENTS=AGENTS),
        grant("agent-search", role, search, identity),
    ]


def _ingesting_from(account: dict[str, Any]) -> list[Resource]:
    identity = res(IDENTITY, "worker")
    worker = app("worker-app", identity, AGENTSTAGE_AGENTS="[]", AGENTSTAGE_KNOWLEDGE_SOURCE=SOURCE)
    return [res(STORAGE, "documents-account", {"accountName": "docs", **account}), identity, worker]


CASES = {
    "AGS-AZ-070": Case(
        target="search",
        passing=lambda: _searched(ENDPOINT),
        failing=lambda: _searched("https://elsewhere.search.windows.net"),
    ),
    "AGS-AZ-071": Case(
        target="index-write",
        passing=lambda: _written_by("knowledge-ingest"),
        failing=lambda: _written_by(None),
    ),
    "AGS-AZ-072": Case(
        target="agent-app",
        passing=lambda: _agent_granted("Search Index Data Reader"),
        failing=lambda: _agent_granted("Search Index Data Contributor"),
    ),
    "AGS-AZ-073": Case(
        target="worker-app",
        passing=lambda: _ingesting_from({"allowSharedKeyAccess": False, "allowBlobPublicAccess": False}),
        failing=lambda: _ingesting_from({"allowBlobPublicAccess": False}),  # shared keys: Azure's default
    ),
}
