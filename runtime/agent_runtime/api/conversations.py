"""``/v1/conversations``: a caller's own conversations, and an operator's erasure of a tenant's.

A conversation belongs to the caller that began it (tenant and caller id, as the authenticated identity
says): the stores key it by that owner, so these routes — like every run that replays history — can only
ever reach the caller's own. Another caller's conversation id answers exactly like an unknown one.

- ``GET /v1/conversations``: the caller's conversations, most recently changed first, page by page (a page's
  ``next`` is the ``after`` of the one after it: a keyset cursor, so a deep page costs what the first does).
- ``GET /v1/conversations/{id}``: one of them, its newest messages as stored (redacted), and by position
  (``before``) the older ones, page by page; 404 otherwise.
- ``DELETE /v1/conversations/{id}``: forget one of them; 404 otherwise.
- ``DELETE /v1/tenants/{tenant}/conversations``: forget every conversation of a tenant; callers with
  ``AGENTSTAGE_OPERATOR_ROLE`` only.

Deletions are written to the audit log (``agentstage.audit``): who, whose, which.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from agent_runtime.api.deps import CallerDep, ServicesDep
from agent_runtime.api.schemas import (
    CONVERSATION_ID_PATTERN,
    ConversationHistory,
    ConversationInfo,
    ConversationList,
    TenantErasure,
    error_responses,
)
from agent_runtime.errors import Forbidden, UnknownConversation, UnprocessableRequest
from agent_runtime.memory import InvalidCursor
from agent_runtime.orchestrator.handoff import Handoffs, is_bookkeeping
from agent_runtime.tools.audit import audit_log

router = APIRouter(prefix="/v1", tags=["conversations"])

MAX_HISTORY_MESSAGES = 200
"""The most messages one read of a conversation returns: with requests of up to 100,000 characters
(``AGENTSTAGE_MAX_PROMPT_CHARS``), a response of a few tens of MB at most."""

MAX_CURSOR_CHARS = 1024
"""A page's ``next`` is far shorter (a time and a conversation id of at most 128 characters, in base64)."""

ConversationId = Annotated[
    str, Path(pattern=CONVERSATION_ID_PATTERN, description="The id a run returned or was given.")
]


@router.get("/conversations", response_model=ConversationList, responses=error_responses(401, 422))
async def list_conversations(
    runtime: ServicesDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    after: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_CHARS,
            description="A page's `next`: the conversations after that page (leave it out for the first).",
        ),
    ] = None,
) -> ConversationList:
    """Your conversations, most recently changed first, a page at a time: each page's `next`, passed as
    `after`, reads the page after it. A walk lists each conversation once, but one changed meanwhile: it
    moves to the front, where a listing from the start shows it."""
    # Each conversation has at most one handoff record beside it: twice the limit leaves enough after them.
    fetched = 2 * limit
    try:
        stored = await runtime.conversations.conversations(
            caller.owner, limit=fetched, after=_store_cursor(after)
        )
    except InvalidCursor:
        raise _not_a_cursor() from None
    mine: list[ConversationInfo] = []
    resume: str | None = None
    more = len(stored) == fetched  # the store may hold more than it was asked for
    for conversation in stored:
        if len(mine) == limit:
            more = True  # the page ends after the last one read
            break
        resume = conversation.cursor
        if not is_bookkeeping(conversation.id):
            mine.append(
                ConversationInfo(
                    id=conversation.id,
                    created_at=conversation.created_at,
                    updated_at=conversation.updated_at,
                    messages=conversation.messages,
                )
            )
    return ConversationList(conversations=mine, next=_wire_cursor(resume) if more and resume else None)


def _wire_cursor(store_cursor: str) -> str:
    """A store's cursor as callers see it: opaque, URL-safe."""
    return base64.urlsafe_b64encode(store_cursor.encode()).decode().rstrip("=")


def _store_cursor(after: str | None) -> str | None:
    """The store's cursor a caller's ``after`` carries (the store checks that it is one of its own)."""
    if after is None:
        return None
    try:
        return base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise _not_a_cursor() from None


def _not_a_cursor() -> UnprocessableRequest:
    return UnprocessableRequest(
        "after must be the `next` of a page of this listing, as it was returned (leave it out for the first page)",
        field="query.after",
    )


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationHistory,
    responses=error_responses(401, 404, 422),
)
async def get_conversation(
    conversation_id: ConversationId,
    runtime: ServicesDep,
    caller: CallerDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HISTORY_MESSAGES, description="At most this many of its newest messages.")
    ] = 100,
    before: Annotated[
        int | None,
        Query(
            ge=0,
            description="Only messages before this position (0 is its first message): a page's `first`, to "
            "read the messages before that page.",
        ),
    ] = None,
) -> ConversationHistory:
    """One of your conversations: its newest messages (before ``before``), oldest first, where they stand in
    it, and whether older ones precede them.

    Bounded because a conversation is not: every turn adds to it for good, and its whole history in one
    response (1,000 turns of 95,000 characters: 180 MB, 800 MB of the server's memory) stalled every other
    request of the process; so a long one is read back page by page, by position, which turns appended
    meanwhile never shift."""
    page = await runtime.conversations.page(caller.owner, conversation_id, limit=limit, before=before)
    if not page.length:
        raise UnknownConversation(f"you have no conversation '{conversation_id}'", field="conversation_id")
    return ConversationHistory(
        id=conversation_id,
        messages=page.messages,
        first=page.first,
        length=page.length,
        complete=page.first == 0,
    )


@router.delete("/conversations/{conversation_id}", status_code=204, responses=error_responses(401, 404, 422))
async def delete_conversation(
    conversation_id: ConversationId, runtime: ServicesDep, caller: CallerDep
) -> Response:
    """Forget one of your conversations (and who it was handed to)."""
    found = await runtime.conversations.delete(caller.owner, conversation_id)
    await Handoffs(runtime.conversations).forget(caller.owner, conversation_id)
    if not found:
        raise UnknownConversation(f"you have no conversation '{conversation_id}'", field="conversation_id")
    _audit("conversation_deleted", by=caller.id, by_tenant=caller.tenant, conversation_id=conversation_id)
    return Response(status_code=204)


@router.delete(
    # ``:path``: a tenant id may hold '/' (as '%2F' or not), which a plain parameter can never match
    "/tenants/{tenant:path}/conversations",
    response_model=TenantErasure,
    responses=error_responses(401, 403, 422),
)
async def delete_tenant_conversations(
    tenant: Annotated[str, Path(max_length=256, description="The tenant, as callers' identities name it.")],
    runtime: ServicesDep,
    caller: CallerDep,
) -> TenantErasure:
    """Forget every conversation of every caller of a tenant (an erasure request); operators only."""
    settings = runtime.settings
    if not caller.acts_as(settings.operator_role, tenant, settings.platform_tenant):
        raise Forbidden(
            f"deleting a tenant's conversations needs the '{settings.operator_role}' role in that tenant, "
            "or in the platform's tenant (AGENTSTAGE_PLATFORM_TENANT)"
        )
    deleted = await runtime.conversations.delete_tenant(tenant)
    _audit(
        "tenant_conversations_deleted", by=caller.id, by_tenant=caller.tenant, tenant=tenant, deleted=deleted
    )
    return TenantErasure(tenant=tenant, deleted=deleted)


def _audit(event: str, **fields: str | int) -> None:
    audit_log.info(json.dumps({"event": event, **fields}))
