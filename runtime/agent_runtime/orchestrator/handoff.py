"""Who holds a conversation after a handoff: kept beside the conversation, never inside it.

The record lives in the conversation store as the owner's conversation ``<conversation id>#handoff``: every
backend has it, it is the owner's like the conversation itself, the delegate's own history stays free of
bookkeeping the model would otherwise read, and no caller can write or read it through the API
(conversation ids there cannot contain ``#``; listings leave it out).
"""

from __future__ import annotations

import time

from agent_runtime.memory.base import ConversationStore, Owner

_SUFFIX = "#handoff"


def is_bookkeeping(conversation_id: str) -> bool:
    """Whether a stored conversation is a handoff record rather than one a caller began."""
    return conversation_id.endswith(_SUFFIX)


class Handoffs:
    def __init__(self, conversations: ConversationStore) -> None:
        self._conversations = conversations

    async def holder(self, owner: Owner, conversation_id: str) -> str | None:
        """The agent the owner's conversation was last handed to, if any."""
        entries = await self._conversations.history(owner, conversation_id + _SUFFIX, limit=1)
        return str(entries[-1]["agent"]) if entries else None

    async def record(self, owner: Owner, conversation_id: str, orchestrator: str, agent: str) -> None:
        entry = {
            "role": "system",
            "content": "handoff",
            "from": orchestrator,
            "agent": agent,
            "at": time.time(),
        }
        await self._conversations.append(owner, conversation_id + _SUFFIX, [entry])

    async def forget(self, owner: Owner, conversation_id: str) -> None:
        """Drop the record with its conversation."""
        await self._conversations.delete(owner, conversation_id + _SUFFIX)
