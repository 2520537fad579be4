"""Ingestion is the runtime's own work: its embeddings count against the ``knowledge-ingest`` agent's budgets
and never against a tenant's, a caller's or an application's, which belong to the callers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from runtime_helpers import AGENTS, SCRIPT, make_registry

from agent_runtime.api import create_app
from agent_runtime.caller import Caller
from agent_runtime.knowledge.service import INGEST_AGENT, DocumentEvents
from agent_runtime.runner import RunOptions
from agent_runtime.settings import Settings
from agent_runtime.testing import ScriptedModelServer

BUDGETS = [
    {"name": f"per-{scope}", "scope": scope, "match": "*", "window_seconds": 3600, "requests": 1}
    for scope in ("tenant", "caller", "application")
] + [{"name": "ingest", "scope": "agent", "match": INGEST_AGENT, "window_seconds": 3600, "tokens": 10**6}]
CREATED = {
    "eventType": "Microsoft.Storage.BlobCreated",
    "subject": "/blobServices/default/containers/docs/blobs/policy.md",
}


def test_ingestion_spends_no_tenants_or_applications_quota(tmp_path: Path) -> None:
    documents = tmp_path / "docs"
    documents.mkdir()
    (documents / "policy.md").write_text("# Leave\n\nEmployees get 30 days of leave per year.\n")
    with ScriptedModelServer(SCRIPT) as model:
        settings = Settings(
            llm_endpoint=model.base_url,
            llm_auth="none",
            sqlite_path=str(tmp_path / "state.db"),
            agents=json.dumps(AGENTS),
            api_key="k" * 20,
            budgets=json.dumps(BUDGETS),
            knowledge_backend="sqlite",
            knowledge_source=str(documents),
            knowledge_default_readers=["*"],
        )
        app = create_app(settings, registry=make_registry())

        async def scenario() -> str:
            services = await app.state.lifecycle.get()
            try:
                events = await DocumentEvents.open(services)
                [outcome] = await events.handle(CREATED)
                assert (outcome.action, outcome.chunks) == ("indexed", 1)
                # A caller of the default tenant whose credentials name no application: the first request
                # of its tenant, of its own and of the shared "unknown" application.
                erin = Caller("erin", frozenset({"user"}))
                result = await services.runner.run(
                    services.catalog.get("assistant"),
                    [{"role": "user", "content": "hi"}],
                    RunOptions(caller=erin),
                )
                return result.answer
            finally:
                await app.state.lifecycle.close()

        assert asyncio.run(scenario())
    with sqlite3.connect(settings.sqlite_path) as ledger:
        spent = {
            key.split("|")[0]: spent for key, spent in ledger.execute("SELECT key, spent FROM budget_ledger")
        }
    assert spent.keys() == {"ingest", "per-tenant", "per-caller", "per-application"}
    assert [spent[f"per-{scope}"] for scope in ("tenant", "caller", "application")] == [1, 1, 1], (
        "erin's one request in each of her counters, ingestion's in none"
    )
