"""Vector recall over an agent's namespace: embed the text, search the vector store.

Shared by the ``memory_search`` tool (the model asks) and the agent loop's automatic recall (the
agent's memory policy asks), so both see the same embeddings and the same namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the tool registry is also read offline, without the runtime's clients
    from agent_runtime.llm import ChatModel
    from agent_runtime.memory.base import VectorHit, VectorStore
    from agent_runtime.settings import Settings


async def recall(
    text: str, *, namespace: str, top_k: int, llm: ChatModel, vectors: VectorStore, settings: Settings
) -> list[VectorHit]:
    [embedding] = await llm.embed(
        [text], model=settings.embedding_model, dimensions=settings.embedding_dimensions
    )
    return await vectors.query(namespace, embedding, top_k=top_k)
