"""A conversation belongs to its caller: the leak report replayed over HTTP, and the owners' routes.

Alice (tenant t-a) tells the assistant something under conversation C. Bob (tenant t-b), and a caller who is
also named alice but in tenant t-b, then name C: neither sees her history nor adds to it. Owners list, read
and delete their conversations; an operator erases a tenant's; every deletion is audited.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from runtime_helpers import AGENTS, Runtime, RuntimeFactory, audit_records

from agent_runtime.api.conversations import MAX_HISTORY_MESSAGES
from agent_runtime.memory import Owner
from agent_runtime.memory.dynamodb import DynamoDBConversationStore
from agent_runtime.memory.sqlite import SqliteConversationStore
from agent_runtime.testing import ScriptedModelServer

KEYS = {
    "alice-key-0123456789": {"caller": "alice", "roles": ["user"], "tenant": "t-a"},
    "carol-key-0123456789": {"caller": "carol", "roles": ["user"], "tenant": "t-a"},
    "bob-key-0123456789": {"caller": "bob", "roles": ["user"], "tenant": "t-b"},
    "twin-key-0123456789": {"caller": "alice", "roles": ["user"], "tenant": "t-b"},
    "ops-key-0123456789": {"caller": "ops", "roles": ["operator"], "tenant": "platform"},
}
ALICE, CAROL, BOB, TWIN, OPS = (key for key in KEYS)
SECRET = "my account number is 31415926"


@pytest.fixture(params=["sqlite", "dynamodb"])
def runtime(runtime_factory: RuntimeFactory, request: pytest.FixtureRequest) -> Runtime:
    """The runtime with conversations in SQLite, or in a fresh DynamoDB table (the session's moto server)."""
    state: dict[str, str] = {}
    if request.param == "dynamodb":
        table = request.getfixturevalue("dynamodb").create("conversations")
        state = {"state_backend": "dynamodb", "dynamodb_conversations_table": table}
    return runtime_factory(
        api_keys=json.dumps(KEYS), agents=json.dumps(AGENTS), platform_tenant="platform", **state
    )


def _prompt_of_last_call(model: ScriptedModelServer) -> str:
    return json.dumps(model.requests[-1]["messages"])


def test_another_callers_conversation_id_neither_reads_nor_writes_its_history(
    runtime: Runtime, model: ScriptedModelServer
) -> None:
    first = runtime.invoke("assistant", SECRET, key=ALICE)
    assert first.status_code == 200, first.text
    conversation = first.json()["conversation_id"]

    for intruder in (BOB, TWIN):
        response = runtime.invoke(
            "assistant", "what did we talk about?", key=intruder, conversation_id=conversation
        )
        assert response.status_code == 200 and response.json()["conversation_id"] == conversation
        assert "31415926" not in _prompt_of_last_call(model), "another caller's history reached the model"
        assert "31415926" not in response.text

    again = runtime.invoke("assistant", "and now?", key=ALICE, conversation_id=conversation)
    assert again.status_code == 200
    prompt = _prompt_of_last_call(model)
    assert "31415926" in prompt, "Alice's own history is replayed"
    assert "what did we talk about" not in prompt, "nothing was appended to Alice's conversation"


def test_reading_a_conversation_returns_its_newest_messages_and_says_whether_that_is_all(
    runtime: Runtime,
) -> None:
    """A conversation grows with every turn for good: one read of it is bounded, newest messages first."""
    for turn in range(4):
        assert (
            runtime.invoke("assistant", f"turn {turn}", key=ALICE, conversation_id="long").status_code == 200
        )
    every = runtime.http.get("/v1/conversations/long", headers=_auth(ALICE)).json()
    assert (len(every["messages"]), every["complete"]) == (8, True)
    for limit in (1, 3, 7, 8, 9):
        page = runtime.http.get(f"/v1/conversations/long?limit={limit}", headers=_auth(ALICE)).json()
        assert page["messages"] == every["messages"][-limit:]
        assert page["complete"] is (limit >= 8)
    for bad in (0, MAX_HISTORY_MESSAGES + 1, "x"):
        refused = runtime.http.get(f"/v1/conversations/long?limit={bad}", headers=_auth(ALICE))
        assert (refused.status_code, refused.json()["error"]["field"]) == (422, "query.limit")


def test_a_conversation_longer_than_one_read_is_read_back_page_by_page(runtime: Runtime) -> None:
    """One read holds at most MAX_HISTORY_MESSAGES; older messages are reached by position (``before`` = a
    page's ``first``): turns appended between two reads shift nothing, and no other caller reaches a page."""
    for turn in range(4):
        assert (
            runtime.invoke("assistant", f"turn {turn}", key=ALICE, conversation_id="paged").status_code == 200
        )
    every = runtime.http.get("/v1/conversations/paged", headers=_auth(ALICE)).json()
    assert (every["first"], every["length"], every["complete"]) == (0, 8, True)

    pages, before = [], ""
    while True:
        page = runtime.http.get(f"/v1/conversations/paged?limit=3{before}", headers=_auth(ALICE)).json()
        pages.append(page)
        if page["complete"]:
            break
        if len(pages) == 1:  # a turn lands between two reads
            assert runtime.invoke("assistant", "late", key=ALICE, conversation_id="paged").status_code == 200
        before = f"&before={page['first']}"
    assert [(page["first"], len(page["messages"])) for page in pages] == [(5, 3), (2, 3), (0, 2)]
    assert [message for page in reversed(pages) for message in page["messages"]] == every["messages"]
    assert [page["length"] for page in pages] == [8, 10, 10]

    beyond = runtime.http.get("/v1/conversations/paged?before=500", headers=_auth(ALICE)).json()
    assert (beyond["first"], beyond["length"], beyond["complete"]) == (0, 10, True)
    assert runtime.http.get("/v1/conversations/paged?before=0", headers=_auth(ALICE)).json()["messages"] == []
    assert runtime.http.get("/v1/conversations/paged?before=2", headers=_auth(BOB)).status_code == 404
    refused = runtime.http.get("/v1/conversations/paged?before=-1", headers=_auth(ALICE))
    assert (refused.status_code, refused.json()["error"]["field"]) == (422, "query.before")


def test_owners_list_read_and_delete_only_their_own_conversations(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.audit")
    for key, conversation, text in ((ALICE, "c1", "one"), (ALICE, "c2", "two"), (BOB, "c1", "bob's")):
        assert runtime.invoke("assistant", text, key=key, conversation_id=conversation).status_code == 200

    mine = runtime.http.get("/v1/conversations", headers=_auth(ALICE)).json()["conversations"]
    assert [(c["id"], c["messages"]) for c in mine] == [("c2", 2), ("c1", 2)]
    assert [
        c["id"] for c in runtime.http.get("/v1/conversations", headers=_auth(BOB)).json()["conversations"]
    ] == ["c1"]
    assert (
        runtime.http.get("/v1/conversations?limit=1", headers=_auth(ALICE)).json()["conversations"][0]["id"]
        == "c2"
    )

    history = runtime.http.get("/v1/conversations/c2", headers=_auth(ALICE))
    assert history.status_code == 200
    assert [m["content"] for m in history.json()["messages"]] == ["two", "two"]

    someone_elses = runtime.http.get("/v1/conversations/c2", headers=_auth(BOB))
    never_used = runtime.http.get("/v1/conversations/zz", headers=_auth(BOB))
    assert someone_elses.status_code == never_used.status_code == 404
    assert someone_elses.text.replace("c2", "zz") == never_used.text, "an id of someone else looks unknown"
    assert someone_elses.json()["error"]["code"] == "unknown_conversation"

    assert runtime.http.delete("/v1/conversations/c2", headers=_auth(BOB)).status_code == 404
    assert runtime.http.get("/v1/conversations/c2", headers=_auth(ALICE)).status_code == 200
    assert runtime.http.delete("/v1/conversations/c1", headers=_auth(ALICE)).status_code == 204
    assert runtime.http.get("/v1/conversations/c1", headers=_auth(ALICE)).status_code == 404
    assert runtime.http.get("/v1/conversations/c1", headers=_auth(BOB)).status_code == 200, "Bob's c1 stays"
    assert runtime.http.delete("/v1/conversations/c1", headers=_auth(ALICE)).status_code == 404

    deleted = [r for r in audit_records(caplog) if r["event"] == "conversation_deleted"]
    assert deleted == [
        {"event": "conversation_deleted", "by": "alice", "by_tenant": "t-a", "conversation_id": "c1"}
    ]


def test_an_operator_erases_a_tenants_conversations_and_only_an_operator_may(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.audit")
    for key, conversation in ((ALICE, "a"), (CAROL, "c"), (BOB, "a"), (TWIN, "a")):
        assert runtime.invoke("assistant", "hello", key=key, conversation_id=conversation).status_code == 200

    refused = runtime.http.delete("/v1/tenants/t-a/conversations", headers=_auth(ALICE))
    assert refused.status_code == 403 and "'operator' role" in refused.json()["error"]["message"]

    erased = runtime.http.delete("/v1/tenants/t-a/conversations", headers=_auth(OPS))
    assert erased.status_code == 200 and erased.json() == {"tenant": "t-a", "deleted": 2}
    for key in (ALICE, CAROL):
        assert runtime.http.get("/v1/conversations", headers=_auth(key)).json()["conversations"] == []
    for key in (BOB, TWIN):
        assert len(runtime.http.get("/v1/conversations", headers=_auth(key)).json()["conversations"]) == 1

    [record] = [r for r in audit_records(caplog) if r["event"] == "tenant_conversations_deleted"]
    assert record == {
        "event": "tenant_conversations_deleted",
        "by": "ops",
        "by_tenant": "platform",
        "tenant": "t-a",
        "deleted": 2,
    }


def test_handoff_records_are_never_listed_as_conversations(runtime: Runtime) -> None:
    assert runtime.invoke("assistant", "hello", key=ALICE, conversation_id="c1").status_code == 200

    asyncio.run(_append(runtime, Owner("t-a", "alice"), ["c1#handoff"], role="system"))
    listed = runtime.http.get("/v1/conversations", headers=_auth(ALICE)).json()["conversations"]
    assert [c["id"] for c in listed] == ["c1"]
    assert runtime.http.delete("/v1/conversations/c1", headers=_auth(ALICE)).status_code == 204
    assert runtime.http.get("/v1/conversations", headers=_auth(ALICE)).json()["conversations"] == []


def test_a_caller_lists_every_conversation_page_by_page_and_only_its_own(runtime: Runtime) -> None:
    """Handoff records lie beside some of them in the store: pages skip them, and the walk goes on past them."""
    mine = [f"c{i}" for i in range(9)]
    stored: list[str] = []
    for number, conversation in enumerate(mine):
        stored += [conversation, f"{conversation}#handoff"] if number % 2 else [conversation]
    asyncio.run(_append(runtime, Owner("t-a", "alice"), stored))
    asyncio.run(_append(runtime, Owner("t-a", "carol"), ["carols"]))

    pages, after = [], None
    while True:
        response = runtime.http.get(
            "/v1/conversations",
            params={"limit": 2, **({"after": after} if after else {})},
            headers=_auth(ALICE),
        )
        assert response.status_code == 200, response.text
        pages.append([c["id"] for c in response.json()["conversations"]])
        after = response.json()["next"]
        if after is None:
            break
    assert [conversation for page in pages for conversation in page] == mine[::-1], "newest first, each once"
    assert all(len(page) == 2 for page in pages[:-1])
    whole = runtime.http.get("/v1/conversations", headers=_auth(ALICE)).json()
    assert [c["id"] for c in whole["conversations"]] == mine[::-1] and whole["next"] is None


@pytest.mark.parametrize(
    "after",
    ["not base64 at all!", "bm90IGpzb24", "WyJ5ZXN0ZXJkYXkiLCJjMSJd", "//79", "x" * 1025],
    ids=["not-base64", "not-json", "not-a-time", "not-utf8", "too-long"],
)
def test_an_after_that_no_page_returned_is_refused_by_name(runtime: Runtime, after: str) -> None:
    response = runtime.http.get("/v1/conversations", params={"after": after}, headers=_auth(ALICE))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "query.after"


async def _append(runtime: Runtime, owner: Owner, conversations: list[str], role: str = "user") -> None:
    """Conversations written as a replica writes them, in this order (the last is the newest)."""
    settings = runtime.settings
    store = (
        await DynamoDBConversationStore.connect(settings.dynamodb_conversations_table)
        if settings.state_backend == "dynamodb"
        else await SqliteConversationStore.open(settings.sqlite_path)
    )
    try:
        for conversation in conversations:
            await store.append(owner, conversation, [{"role": role, "content": "hi"}])
    finally:
        await store.close()


@pytest.mark.parametrize("path", ["/v1/conversations/bad%23id", "/v1/conversations/" + "x" * 129])
def test_conversation_ids_outside_the_documented_shape_are_refused(runtime: Runtime, path: str) -> None:
    response = runtime.http.get(path, headers=_auth(ALICE))
    assert response.status_code == 422 and response.json()["error"]["field"] == "path.conversation_id"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_an_operator_erases_a_tenant_whose_id_holds_a_slash(runtime_factory: RuntimeFactory) -> None:
    keys = {
        "org-key-0123456789": {"caller": "dana", "roles": ["user"], "tenant": "org/a"},
        "ops-key-0123456789": KEYS[OPS],
    }
    runtime = runtime_factory(
        api_keys=json.dumps(keys), agents=json.dumps(AGENTS), platform_tenant="platform"
    )
    for path in ("/v1/tenants/org%2Fa/conversations", "/v1/tenants/org/a/conversations"):
        assert (
            runtime.invoke("assistant", "hello", key="org-key-0123456789", conversation_id="d1").status_code
            == 200
        )
        erased = runtime.http.delete(path, headers=_auth(OPS))
        assert erased.status_code == 200 and erased.json() == {"tenant": "org/a", "deleted": 1}, path
        assert (
            runtime.http.get("/v1/conversations/d1", headers=_auth("org-key-0123456789")).status_code == 404
        )


def test_an_operator_outside_the_platforms_tenant_erases_only_its_own(
    runtime_factory: RuntimeFactory,
) -> None:
    """Each tenant's administrators may grant roles in it (the app roles of a multi-tenant app): an operator
    of t-b is no operator of t-a's data. Without a platform tenant, no operator reaches past its own."""
    keys = {**KEYS, "ops-b-key-0123456789": {"caller": "ops-b", "roles": ["operator"], "tenant": "t-b"}}
    runtime = runtime_factory(api_keys=json.dumps(keys), agents=json.dumps(AGENTS))
    assert runtime.invoke("assistant", "hello", key=ALICE, conversation_id="a").status_code == 200
    for operator in ("ops-b-key-0123456789", OPS):
        refused = runtime.http.delete("/v1/tenants/t-a/conversations", headers=_auth(operator))
        assert refused.status_code == 403 and "in that tenant" in refused.json()["error"]["message"]
    assert runtime.http.get("/v1/conversations/a", headers=_auth(ALICE)).status_code == 200, "kept"
    own = runtime.http.delete("/v1/tenants/t-b/conversations", headers=_auth("ops-b-key-0123456789"))
    assert own.status_code == 200
