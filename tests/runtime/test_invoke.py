"""``POST /v1/agents/{agent}/invoke``: answers, traces, conversations and vector recall over real HTTP."""

from __future__ import annotations

import asyncio
import json

from runtime_helpers import AGENTS, Runtime, RuntimeFactory

from agent_runtime.memory.base import VectorItem
from agent_runtime.memory.sqlite import SqliteVectorStore
from agent_runtime.testing import ScriptedModelServer, embed


def test_invoke_returns_answer_usage_and_trace(runtime: Runtime) -> None:
    response = runtime.invoke("assistant", "calc (2 + 3) * 4")
    assert response.status_code == 200
    body = response.json()
    assert body["agent"] == "assistant"
    assert body["answer"] == "20"
    model_1, tool, model_2 = body["steps"]
    assert (model_1["kind"], model_1["finish_reason"]) == ("model", "tool_calls")
    assert model_1["tool_calls"] == ["calculator"]
    assert (tool["kind"], tool["tool"], tool["outcome"], tool["error"]) == ("tool", "calculator", "ok", None)
    assert len(tool["args_sha256"]) == 64
    assert (model_2["kind"], model_2["finish_reason"]) == ("model", "stop")
    spent = model_1["usage"]["total_tokens"] + model_2["usage"]["total_tokens"]
    assert body["usage"]["total_tokens"] == spent


def test_several_tool_calls_in_one_step_each_get_a_result(
    runtime: Runtime, model: ScriptedModelServer
) -> None:
    body = runtime.invoke("assistant", "two tools").json()
    assert [step["kind"] for step in body["steps"]] == ["model", "tool", "tool", "model"]
    assert body["answer"] == "2\n2"
    tool_messages = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_2_0", "call_2_1"]


def test_a_conversation_remembers_earlier_turns(runtime: Runtime, model: ScriptedModelServer) -> None:
    first = runtime.invoke("assistant", "my name is Ada").json()
    conversation = first["conversation_id"]
    assert conversation
    second = runtime.invoke("assistant", "story", conversation_id=conversation).json()
    assert second["conversation_id"] == conversation
    replayed = model.requests[-1]["messages"]
    assert replayed == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "my name is Ada"},
        {"role": "user", "content": "story"},
    ]


def test_messages_input_and_separate_conversations(runtime: Runtime, model: ScriptedModelServer) -> None:
    body = {"messages": [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}]}
    answer = runtime.post("/v1/agents/assistant/invoke", body).json()
    assert answer["answer"] == "second"
    runtime.invoke("assistant", "unrelated")
    assert [m["content"] for m in model.requests[-1]["messages"]] == ["Be brief.", "unrelated"]


def test_recall_puts_long_term_memory_into_the_prompt(
    runtime_factory: RuntimeFactory, model: ScriptedModelServer
) -> None:
    recaller = {"name": "recaller", "memory": {"recall_top_k": 1, "persist": False}}
    runtime = runtime_factory(agents=json.dumps([*AGENTS, recaller]))
    asyncio.run(_remember(runtime, "recaller", ["the office wifi password is tulip", "lunch is at noon"]))
    body = runtime.invoke("recaller", "what is the wifi password").json()
    assert body["conversation_id"] is None
    system = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "system"]
    assert system == ["Relevant long-term memory:\n- the office wifi password is tulip"]


def test_memory_search_tool_searches_the_agents_namespace(runtime: Runtime) -> None:
    asyncio.run(_remember(runtime, "assistant", ["deploys happen on tuesday", "the cafeteria serves soup"]))
    asyncio.run(_remember(runtime, "restricted", ["deploys are secret elsewhere"]))
    body = runtime.invoke("assistant", "search when do deploys happen").json()
    hits = json.loads(body["answer"])
    assert hits[0]["text"] == "deploys happen on tuesday"
    assert all(hit["text"] != "deploys are secret elsewhere" for hit in hits)


async def _remember(runtime: Runtime, namespace: str, texts: list[str]) -> None:
    """Write to the runtime's own SQLite file, as a separate process would."""
    settings = runtime.settings
    store = await SqliteVectorStore.open(settings.sqlite_path, settings.embedding_dimensions)
    try:
        items = [
            VectorItem(id=str(i), embedding=embed(text, settings.embedding_dimensions), text=text)
            for i, text in enumerate(texts)
        ]
        await store.upsert(namespace, items)
    finally:
        await store.close()
