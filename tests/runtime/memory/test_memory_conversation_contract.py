"""The ConversationStore contract, run against every backend that runs here (see conftest.BACKENDS)."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.memory import ConversationStore

pytestmark = pytest.mark.anyio


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


async def test_history_is_oldest_first_and_limit_keeps_the_newest(backend):
    store = await backend.conversations()
    assert isinstance(store, ConversationStore)
    await store.append("c1", [user("one"), user("two")])
    await store.append("c1", [user("three")])
    await store.append("c1", [])

    assert await store.history("c1") == [user("one"), user("two"), user("three")]
    assert await store.history("c1", limit=2) == [user("two"), user("three")]
    assert await store.history("c1", limit=10) == [user("one"), user("two"), user("three")]
    assert await store.history("c1", limit=0) == []
    assert await store.history("never-written") == []


async def test_conversations_are_isolated_and_delete_forgets_one(backend):
    store = await backend.conversations()
    await store.append("alice", [user("hi from alice")])
    await store.append("bob", [user("hi from bob")])

    await store.delete("alice")
    await store.delete("does-not-exist")

    assert await store.history("alice") == []
    assert await store.history("bob") == [user("hi from bob")]
    await store.append("alice", [user("again")])
    assert await store.history("alice") == [user("again")]


async def test_unicode_structure_and_large_content_round_trip(backend):
    store = await backend.conversations()
    tool_call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "ü"}'}}
        ],
    }
    odd = user('Grüße, 你好, مرحبا, 👋🏽, e\u0301, tab\tnewline\n quote" backslash\\ nul\x00 end')
    large = user("x" * 1_000_000 + "🙂")
    await store.append("c", [tool_call, odd, large])
    assert await store.history("c") == [tool_call, odd, large]


async def test_concurrent_appends_keep_each_tasks_order_and_each_append_contiguous(backend):
    store = await backend.conversations()
    tasks, appends = 20, 10

    async def writer(task: int) -> None:
        for i in range(appends):
            await store.append("shared", [user(f"{task}:{i}:a"), user(f"{task}:{i}:b")])

    await asyncio.gather(*(writer(t) for t in range(tasks)))

    contents = [m["content"] for m in await store.history("shared")]
    assert len(contents) == tasks * appends * 2
    for first, second in zip(contents[::2], contents[1::2], strict=True):
        assert (first[:-1], first[-1], second[-1]) == (second[:-1], "a", "b"), "an append was split"
    for task in range(tasks):
        mine = [c for c in contents[::2] if c.startswith(f"{task}:")]
        assert mine == [f"{task}:{i}:a" for i in range(appends)]


async def test_another_replica_sees_the_same_state(backend):
    writer, reader = await backend.conversations(), await backend.conversations()
    await writer.append("c", [user("written by one replica")])
    assert await reader.history("c") == [user("written by one replica")]
    await reader.delete("c")
    assert await writer.history("c") == []


async def test_invalid_arguments_are_refused_before_anything_is_written(backend):
    store = await backend.conversations()
    with pytest.raises(ValueError, match="conversation id"):
        await store.append("", [user("x")])
    with pytest.raises(TypeError, match="message 1"):
        await store.append("c", [user("ok"), "not a dict"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="limit"):
        await store.history("c", limit=-1)
    assert await store.history("c") == []


async def test_close_is_idempotent(backend):
    store = await backend.conversations()
    await store.append("c", [user("x")])
    await store.close()
    await store.close()
