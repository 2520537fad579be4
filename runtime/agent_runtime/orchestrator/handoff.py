"""Who holds a conversation after a handoff: kept beside the conversation, never inside it.

The record lives in the conversation store under ``<conversation id>#handoff``: every backend has it, the
delegate's own history stays free of bookkeeping the model would otherwise read, and no caller can write
or read it through the API (conversation ids there cannot contain ``#``).
"""

from __future__ import annotations

import time

from agent_runtime.memory.base import ConversationStore

_SUFFIX = "#handoff"


class Handoffs:
    def __init__(self, conversations: ConversationStore) -> None:
        self._conversations = conversations

    async def holder(self, conversation_id: str) -> str | None:
        """The agent the conversation was last handed to, if any."""
        entries = await self._conversations.history(conversation_id + _SUFFIX, limit=1)
        return str(entries[-1]["agent"]) if entries else None

    async def record(self, conversation_id: str, orchestrator: str, agent: str) -> None:
        entry = {
            "role": "system",
            "content": "handoff",
            "from": orchestrator,
            "agent": agent,
            "at": time.time(),
        }
        await self._conversations.append(conversation_id + _SUFFIX, [entry])
