"""``knowledge_search``: the organisation's documents, trimmed to what the caller may read, with sources.

The index is shared by every agent (see :mod:`agent_runtime.knowledge`); what a caller sees is decided by
the caller's roles against each document's readers, inside the index's query. Each passage comes with its
document, URI, title, headings and chunk number so the agent can cite it.

The documents are the organisation's, the data of the default tenant: a role counts as a reader only when
the caller holds it for that tenant (:meth:`~agent_runtime.caller.Caller.acts_as`). Another tenant's
administrators may grant their users any role name, ``hr`` included, and must not read the organisation's
HR documents by doing so; every caller still reads what is written for everyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agent_runtime.knowledge.base import KnowledgeQuery
from agent_runtime.tools.base import ToolContext

if TYPE_CHECKING:  # the tool's declaration is also read by `agentstage plan`, which loads no caller model
    from agent_runtime.caller import Caller


class KnowledgeSearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=2000, description="What to look for, in plain words.")
    top_k: int = Field(default=5, ge=1, le=20, description="How many passages to return.")


async def knowledge_search(args: KnowledgeSearchArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    """Search the organisation's documents; returns the best passages the caller may read, with their
    source (document, URI, title, section) to cite."""
    settings = ctx.settings
    [embedding] = await ctx.llm.embed(
        [args.query], model=settings.embedding_model, dimensions=settings.embedding_dimensions
    )
    index = await ctx.knowledge.get()
    passages = await index.search(
        KnowledgeQuery(
            args.query, embedding, principals=_readers(ctx.caller, settings.platform_tenant), top_k=args.top_k
        )
    )
    return [
        {
            "text": passage.text,
            "source": {
                "document": passage.document_id,
                "uri": passage.uri,
                "title": passage.title,
                "section": " > ".join(passage.headings),
                "chunk": passage.index,
            },
            "score": round(passage.score, 4),
        }
        for passage in passages
    ]


def _readers(caller: Caller, platform_tenant: str | None) -> frozenset[str]:
    """The caller's roles that count as readers of the organisation's documents: those it holds for the
    default tenant. Documents for everyone need none: every index adds
    :data:`~agent_runtime.knowledge.base.EVERYONE` to the principals itself."""
    from agent_runtime.caller import DEFAULT_TENANT  # loaded already wherever a tool runs

    return frozenset(role for role in caller.roles if caller.acts_as(role, DEFAULT_TENANT, platform_tenant))
