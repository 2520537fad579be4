"""The ConversationStore contract, run against every backend (see conftest.CONVERSATION_BACKENDS).

A conversation is its owner's: the same id in two owners' hands names two conversations, and no operation
of one owner reaches the other's — however the tenant and caller ids are spelled.
"""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.memory import Conversation, ConversationStore, HistoryPage, InvalidCursor, Owner

pytestmark = pytest.mark.anyio

ALICE = Owner("t-a", "alice")
BOB = Owner("t-b", "bob")
BOB_IN_A = Owner("t-a", "bob")
ALICE_IN_B = Owner("t-b", "alice")


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


async def test_history_is_oldest_first_and_limit_keeps_the_newest(conversation_backend):
    store = await conversation_backend.conversations()
    assert isinstance(store, ConversationStore)
    await store.append(ALICE, "c1", [user("one"), user("two")])
    await store.append(ALICE, "c1", [user("three")])
    await store.append(ALICE, "c1", [])

    assert await store.history(ALICE, "c1") == [user("one"), user("two"), user("three")]
    assert await store.history(ALICE, "c1", limit=2) == [user("two"), user("three")]
    assert await store.history(ALICE, "c1", limit=10) == [user("one"), user("two"), user("three")]
    assert await store.history(ALICE, "c1", limit=0) == []
    assert await store.history(ALICE, "never-written") == []


async def test_pages_walk_a_conversation_back_by_position(conversation_backend):
    store = await conversation_backend.conversations()
    # One message larger than a DynamoDB item (stored there in compressed parts), amid ordinary ones.
    large = user("".join(f"{i:08x}" for i in range(60_000)))
    messages = [user(f"m{i}") for i in range(7)]
    messages[2] = large
    await store.append(ALICE, "c", messages[:4])
    await store.append(ALICE, "c", messages[4:])

    newest = await store.page(ALICE, "c", limit=3)
    assert newest == HistoryPage(4, messages[4:], 7)
    older = await store.page(ALICE, "c", limit=3, before=newest.first)
    assert older == HistoryPage(1, messages[1:4], 7)
    assert await store.page(ALICE, "c", limit=3, before=older.first) == HistoryPage(0, messages[:1], 7)
    assert await store.page(ALICE, "c", limit=3, before=0) == HistoryPage(0, [], 7)
    assert await store.page(ALICE, "c", limit=3, before=100) == newest, "past the end reads the end"
    assert await store.page(ALICE, "c", limit=0) == HistoryPage(7, [], 7)
    assert await store.page(ALICE, "c", limit=100) == HistoryPage(0, messages, 7)

    await store.append(ALICE, "c", [user("m7")])
    assert await store.page(ALICE, "c", limit=3, before=4) == HistoryPage(1, messages[1:4], 8), (
        "an append between two reads leaves the positions read before as they were"
    )
    for nobody in (BOB, BOB_IN_A, ALICE_IN_B):
        assert await store.page(nobody, "c", limit=3) == HistoryPage(0, [], 0), f"{nobody} read Alice's page"
    assert await store.page(ALICE, "never-written", limit=3, before=5) == HistoryPage(0, [], 0)
    for limit, before in ((-1, None), (3, -1), (3, True)):
        with pytest.raises(ValueError, match="must be a non-negative integer"):
            await store.page(ALICE, "c", limit=limit, before=before)


async def test_one_owners_conversations_are_isolated_and_delete_forgets_one(conversation_backend):
    store = await conversation_backend.conversations()
    await store.append(ALICE, "first", [user("hi from first")])
    await store.append(ALICE, "second", [user("hi from second")])

    assert await store.delete(ALICE, "first") is True
    assert await store.delete(ALICE, "first") is False, "already gone"
    assert await store.delete(ALICE, "does-not-exist") is False

    assert await store.history(ALICE, "first") == []
    assert await store.history(ALICE, "second") == [user("hi from second")]
    await store.append(ALICE, "first", [user("again")])
    assert await store.history(ALICE, "first") == [user("again")]


async def test_another_owner_using_the_same_id_reaches_a_conversation_of_its_own(conversation_backend):
    """The leak report: Bob names Alice's conversation; he must neither read nor extend hers."""
    store = await conversation_backend.conversations()
    await store.append(
        ALICE, "C", [user("my account number is 12345"), {"role": "assistant", "content": "ok"}]
    )

    for other in (BOB, BOB_IN_A, ALICE_IN_B):
        assert await store.history(other, "C") == [], f"{other} read Alice's history"
        assert await store.delete(other, "C") is False, f"{other} deleted Alice's conversation"
        await store.append(other, "C", [user(f"written by {other.caller} of {other.tenant}")])

    assert await store.history(ALICE, "C") == [
        user("my account number is 12345"),
        {"role": "assistant", "content": "ok"},
    ], "Alice's conversation is exactly as she left it"
    assert await store.history(BOB, "C") == [user("written by bob of t-b")]
    assert await store.history(ALICE_IN_B, "C") == [user("written by alice of t-b")]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (Owner("t:a", "b"), Owner("t", "a:b")),
        (Owner("t", "a b"), Owner("t a", "b")),
        (Owner("{t}", "x"), Owner("t", "{x}")),
        (Owner("tenant/1", "sub|42"), Owner("tenant", "1/sub|42")),
        (Owner("Grüße", "用户"), Owner("grüße", "用户")),
    ],
)
async def test_owners_that_spell_alike_never_share_a_conversation(conversation_backend, first, second):
    store = await conversation_backend.conversations()
    await store.append(first, "c", [user("first's")])
    assert await store.history(second, "c") == []
    assert await store.conversations(second) == []


async def test_an_owner_lists_only_their_own_conversations_newest_first(conversation_backend):
    store = await conversation_backend.conversations()
    for conversation_id in ("older", "newer"):
        await store.append(ALICE, conversation_id, [user("one"), user("two")])
        await asyncio.sleep(0.01)
    await store.append(BOB_IN_A, "bobs", [user("bob's")])
    await store.append(ALICE, "older", [user("three")])  # now the most recently changed

    listed = await store.conversations(ALICE)
    assert [(c.id, c.messages) for c in listed] == [("older", 3), ("newer", 2)]
    older, newer = listed
    assert older.created_at < newer.created_at < older.updated_at
    assert newer.created_at == pytest.approx(newer.updated_at)
    assert [c.id for c in await store.conversations(ALICE, limit=1)] == ["older"]
    assert await store.conversations(ALICE, limit=0) == []
    assert [c.id for c in await store.conversations(BOB_IN_A)] == ["bobs"]
    assert await store.conversations(BOB) == []


async def _walk(
    store: ConversationStore, owner: Owner, size: int, after: str | None = None
) -> list[Conversation]:
    """Every conversation a listing reaches, page after page of ``size``, from ``after``."""
    walked: list[Conversation] = []
    while page := await store.conversations(owner, limit=size, after=after):
        assert len(page) <= size
        walked += page
        after = page[-1].cursor
    return walked


async def test_a_listing_walks_every_conversation_once_page_by_page_ties_included(conversation_backend):
    """Seven of thirteen conversations change at one instant: however the pages cut them, none is listed twice
    and none is missed (a store that orders ties differently on each read, or resumes by time alone, fails)."""
    store = await conversation_backend.conversations()
    ids = [f"c{i:02d}" for i in range(13)]
    tied = ids[4:11]
    for conversation_id in ids[:4]:
        await store.append(ALICE, conversation_id, [user("x")])
    async with conversation_backend.one_instant(ALICE, tied):
        for conversation_id in tied:
            await store.append(ALICE, conversation_id, [user("x")])
    for conversation_id in ids[11:]:
        await store.append(ALICE, conversation_id, [user("x")])
    await store.append(BOB_IN_A, "bobs", [user("x")])

    whole = await store.conversations(ALICE, limit=100)
    assert sorted(c.id for c in whole) == ids
    assert len({c.updated_at for c in whole if c.id in tied}) == 1, "the seven really tie"
    assert [c.updated_at for c in whole] == sorted((c.updated_at for c in whole), reverse=True)
    assert [c.id for c in whole[:2]] == ["c12", "c11"] and [c.id for c in whole[-4:]] == [
        "c03",
        "c02",
        "c01",
        "c00",
    ]
    for size in (1, 2, 3, 4, 5, 13):
        assert [c.id for c in await _walk(store, ALICE, size)] == [c.id for c in whole], f"pages of {size}"


async def test_a_walk_lists_a_conversation_changed_meanwhile_at_most_once(conversation_backend):
    store = await conversation_backend.conversations()
    for number in range(8):
        await store.append(ALICE, f"c{number}", [user("x")])
    first = await store.conversations(ALICE, limit=3)  # c7, c6, c5
    await store.append(ALICE, "c6", [user("again")])  # listed already: moves to the front
    await store.append(ALICE, "c1", [user("again")])  # not listed yet: moves to the front, out of this walk
    rest = await _walk(store, ALICE, 2, after=first[-1].cursor)
    assert [c.id for c in first + rest] == ["c7", "c6", "c5", "c4", "c3", "c2", "c0"]
    assert [c.id for c in await store.conversations(ALICE, limit=2)] == ["c1", "c6"], "a new walk shows them"


async def test_a_cursor_reaches_only_its_readers_own_conversations(conversation_backend):
    store = await conversation_backend.conversations()
    for owner in (ALICE, BOB_IN_A):
        for number in range(3):
            await store.append(owner, f"{owner.caller}-{number}", [user("x")])
    [bobs_newest] = await store.conversations(BOB_IN_A, limit=1)
    listed = await store.conversations(ALICE, after=bobs_newest.cursor)
    assert {c.id for c in listed} <= {"alice-0", "alice-1", "alice-2"}, "a position, never another's data"


@pytest.mark.parametrize(
    "after", ["", "garbage", '["yesterday", "c1"]', '[1e999, "c1"]', '[1.5, ""]', "[1.5]"]
)
async def test_a_cursor_no_listing_returned_is_refused(conversation_backend, after: str):
    store = await conversation_backend.conversations()
    await store.append(ALICE, "c", [user("x")])
    with pytest.raises(InvalidCursor):
        await store.conversations(ALICE, after=after)


async def test_deleting_a_tenant_forgets_every_caller_of_it_and_nobody_else(conversation_backend):
    store = await conversation_backend.conversations()
    await store.append(ALICE, "a1", [user("x")])
    await store.append(ALICE, "a2", [user("x")])
    await store.append(BOB_IN_A, "b1", [user("x")])
    await store.append(BOB, "b1", [user("kept")])
    await store.append(ALICE_IN_B, "a1", [user("kept too")])

    assert await store.delete_tenant("t-a") == 3
    assert await store.delete_tenant("t-a") == 0
    assert await store.conversations(ALICE) == [] and await store.conversations(BOB_IN_A) == []
    assert await store.history(ALICE, "a1") == []
    assert await store.history(BOB, "b1") == [user("kept")]
    assert await store.history(ALICE_IN_B, "a1") == [user("kept too")]
    await store.append(ALICE, "a1", [user("a new beginning")])
    assert [c.id for c in await store.conversations(ALICE)] == ["a1"]


async def test_unicode_structure_and_large_content_round_trip(conversation_backend):
    store = await conversation_backend.conversations()
    tool_call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "ü"}'}}
        ],
    }
    odd = user('Grüße, 你好, مرحبا, 👋🏽, e\u0301, tab\tnewline\n quote" backslash\\ nul\x00 end')
    large = user("x" * 1_000_000 + "🙂")
    await store.append(ALICE, "c", [tool_call, odd, large])
    assert await store.history(ALICE, "c") == [tool_call, odd, large]


async def test_concurrent_appends_keep_each_tasks_order_and_each_append_contiguous(conversation_backend):
    store = await conversation_backend.conversations()
    tasks, appends = 20, 10

    async def writer(task: int) -> None:
        for i in range(appends):
            await store.append(ALICE, "shared", [user(f"{task}:{i}:a"), user(f"{task}:{i}:b")])

    await asyncio.gather(*(writer(t) for t in range(tasks)))

    contents = [m["content"] for m in await store.history(ALICE, "shared")]
    assert len(contents) == tasks * appends * 2
    for first, second in zip(contents[::2], contents[1::2], strict=True):
        assert (first[:-1], first[-1], second[-1]) == (second[:-1], "a", "b"), "an append was split"
    for task in range(tasks):
        mine = [c for c in contents[::2] if c.startswith(f"{task}:")]
        assert mine == [f"{task}:{i}:a" for i in range(appends)]
    [listed] = await store.conversations(ALICE)
    assert listed.messages == tasks * appends * 2


async def test_another_replica_sees_the_same_state(conversation_backend):
    writer, reader = await conversation_backend.conversations(), await conversation_backend.conversations()
    await writer.append(ALICE, "c", [user("written by one replica")])
    assert await reader.history(ALICE, "c") == [user("written by one replica")]
    assert await reader.delete(ALICE, "c") is True
    assert await writer.history(ALICE, "c") == []


async def test_invalid_arguments_are_refused_before_anything_is_written(conversation_backend):
    store = await conversation_backend.conversations()
    with pytest.raises(ValueError, match="conversation id"):
        await store.append(ALICE, "", [user("x")])
    with pytest.raises(TypeError, match="message 1"):
        await store.append(ALICE, "c", [user("ok"), "not a dict"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="owner must be an Owner"):
        await store.history("c", "c")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        await store.history(ALICE, "c", limit=-1)
    with pytest.raises(ValueError, match="tenant"):
        await store.delete_tenant("")
    with pytest.raises(ValueError, match="tenant must be a non-empty string"):
        Owner("", "alice")
    with pytest.raises(ValueError, match="caller must not contain control characters"):
        Owner("t-a", "alice\x00")
    assert await store.history(ALICE, "c") == []
    assert await store.conversations(ALICE) == []


async def test_close_is_idempotent(conversation_backend):
    store = await conversation_backend.conversations()
    await store.append(ALICE, "c", [user("x")])
    await store.close()
    await store.close()
