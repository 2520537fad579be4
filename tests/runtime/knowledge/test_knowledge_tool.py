"""``knowledge_search`` in a served runtime: two callers ask the same question and read different passages,
each with the source to cite; a runtime that could not search refuses to start, naming the setting."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from runtime_helpers import ADMIN_KEY, USER_KEY, RuntimeFactory

from agent_runtime.api import create_app
from agent_runtime.errors import ConfigurationError
from agent_runtime.knowledge.base import EVERYONE, Chunk
from agent_runtime.knowledge.sqlite import SqliteKnowledgeIndex
from agent_runtime.settings import Settings
from agent_runtime.testing.server import embed

AGENTS = [{"name": "librarian", "instructions": "Cite your sources.", "tools": ["knowledge_search"]}]
DOCUMENTS = {
    "handbook.md": ("Handbook", ("Leave",), "The zyzzyva leave allowance is twenty-five days.", {EVERYONE}),
    "hr/pay.md": ("Pay", ("Bonus",), "The zyzzyva bonus is paid in March to every grade.", {"admin"}),
}


def fill(path: str, dimensions: int) -> None:
    async def write() -> None:
        index = await SqliteKnowledgeIndex.open(path, dimensions)
        try:
            for document_id, (title, headings, text, readers) in DOCUMENTS.items():
                chunk = Chunk(
                    document_id=document_id,
                    index=0,
                    text=text,
                    embedding=embed(f"{title} {text}", dimensions),
                    content_hash="0" * 64,
                    readers=frozenset(readers),
                    uri=f"file:///docs/{document_id}",
                    title=title,
                    headings=headings,
                )
                await index.replace_document(document_id, [chunk])
        finally:
            await index.close()

    asyncio.run(write())


def answer(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return json.loads(response.json()["answer"])


def test_two_callers_asking_the_same_question_read_only_what_they_may(
    runtime_factory: RuntimeFactory,
) -> None:
    runtime = runtime_factory(agents=json.dumps(AGENTS))
    fill(runtime.settings.sqlite_path, runtime.settings.embedding_dimensions)

    staff = answer(runtime.invoke("librarian", "knowledge zyzzyva", key=USER_KEY))
    admin = answer(runtime.invoke("librarian", "knowledge zyzzyva", key=ADMIN_KEY))

    assert [passage["source"]["document"] for passage in staff] == ["handbook.md"]
    assert sorted(passage["source"]["document"] for passage in admin) == ["handbook.md", "hr/pay.md"]
    assert staff[0] == {
        "text": "The zyzzyva leave allowance is twenty-five days.",
        "source": {
            "document": "handbook.md",
            "uri": "file:///docs/handbook.md",
            "title": "Handbook",
            "section": "Leave",
            "chunk": 0,
        },
        "score": staff[0]["score"],
    }


TENANT_KEYS = {
    "home-admin-key-0123456789": {"caller": "hana", "roles": ["admin"]},
    "platform-admin-key-0123456789": {"caller": "pat", "roles": ["admin"], "tenant": "t-platform"},
    "evil-admin-key-0123456789": {"caller": "mallory", "roles": ["admin"], "tenant": "t-evil"},
    "evil-user-key-0123456789": {"caller": "eve", "roles": ["user"], "tenant": "t-evil"},
}


@pytest.mark.parametrize(
    "key, documents",
    [
        ("home-admin-key-0123456789", ["handbook.md", "hr/pay.md"]),
        ("platform-admin-key-0123456789", ["handbook.md", "hr/pay.md"]),
        ("evil-admin-key-0123456789", ["handbook.md"]),
        ("evil-user-key-0123456789", ["handbook.md"]),
    ],
)
def test_a_role_granted_by_another_tenant_reads_no_more_than_everyones_documents(
    runtime_factory: RuntimeFactory, key: str, documents: list[str]
) -> None:
    """The documents are the default tenant's: its own ``admin`` and the platform tenant's read the admin-only
    one; an ``admin`` that tenant t-evil's administrators granted themselves reads only what everyone reads."""
    runtime = runtime_factory(
        agents=json.dumps(AGENTS), api_keys=json.dumps(TENANT_KEYS), platform_tenant="t-platform"
    )
    fill(runtime.settings.sqlite_path, runtime.settings.embedding_dimensions)

    found = answer(runtime.invoke("librarian", "knowledge zyzzyva", key=key))

    assert sorted(passage["source"]["document"] for passage in found) == documents


@pytest.mark.parametrize(
    "settings, variable",
    [
        ({"knowledge_backend": "none"}, "AGENTSTAGE_KNOWLEDGE_BACKEND=none"),
        ({"knowledge_backend": "aisearch"}, "needs AGENTSTAGE_SEARCH_ENDPOINT"),
        ({"knowledge_backend": "postgres"}, "needs AGENTSTAGE_POSTGRES_DSN"),
    ],
)
def test_a_runtime_that_could_not_search_refuses_to_start_naming_the_setting(
    settings: dict[str, str], variable: str
) -> None:
    values = {"agents": json.dumps(AGENTS), "api_key": "k" * 20} | settings
    with pytest.raises(ConfigurationError, match=variable):
        create_app(Settings(**values))
