"""``memory_search``: similarity search over the agent's own long-term memory namespace."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agent_runtime.recall import recall
from agent_runtime.tools.base import ToolContext


class MemorySearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=2000, description="What to look for, in plain words.")
    top_k: int = Field(default=5, ge=1, le=20, description="How many passages to return.")


async def memory_search(args: MemorySearchArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    """Search this agent's long-term memory; returns the most similar passages, best first."""
    hits = await recall(
        args.query,
        namespace=ctx.agent,
        top_k=args.top_k,
        llm=ctx.llm,
        vectors=ctx.vectors,
        settings=ctx.settings,
    )
    return [{"id": hit.id, "text": hit.text, "score": round(hit.score, 4)} for hit in hits]
