"""Running one tool call the model asked for: authorize, validate, execute with a timeout, audit.

Nothing here raises to the agent loop: every failure becomes a tool result the model reads (so it can
recover or explain) plus a trace step and an audit record saying what happened.

A tool with ``side_effects`` (or ``requires_approval``) runs at most once per idempotency key: the agent,
the caller (its tenant and its id: a same-named caller of another tenant is someone else) and the call's
scope, which the agent loop chooses: for a request, its ``Idempotency-Key`` header (or conversation), the
tool call id and the arguments; for a task, the task id, the step and the call's index (see
:mod:`agent_runtime.runner`). The key is claimed on the ledger before the tool runs and the result stored
with it, so a replay (a client retry after a lost response, a task re-run after its worker died) gets the
stored result instead of a second payment or e-mail. The tool also receives the key
(``ToolContext.idempotency_key``) for the downstream system, which covers the one gap the ledger cannot: a
process killed while the tool ran, whose claim is still pending; the task's next attempt runs the call again
under the same key (``resume_pending``), and so does a request's retry once the pending claim's lease
(:data:`PENDING_LEASE_MARGIN_SECONDS` past the tool's timeout) has lapsed.

A tool marked ``requires_approval`` runs only when the call was approved by a reviewer (``approved``);
otherwise it is refused with a message pointing at the tasks API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from agent_runtime.caller import Caller
from agent_runtime.errors import ToolArgumentsInvalid, ToolDenied, ToolError, ToolTimeout
from agent_runtime.governance.ledger import PENDING, Ledger
from agent_runtime.tools import audit
from agent_runtime.tools.access import authorize
from agent_runtime.tools.base import Tool, ToolContext
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.trace import ToolStep

if TYPE_CHECKING:  # an annotation only: the registry is also read offline, without a model client
    from agent_runtime.llm import ToolCall

log = logging.getLogger("agentstage.tools")


@dataclass(frozen=True)
class ToolResult:
    """The tool message content for the model, and the step for the trace."""

    content: str
    step: ToolStep


PENDING_LEASE_MARGIN_SECONDS = 60.0
"""How long past the tool's timeout a call's pending claim lasts. A live call ends by then (the timeout
cancels it; its claim is completed or released), so a claim still pending is an attempt that died with its
process: a retry with the same key then runs the call again under that key instead of being told, for the
whole idempotency window (a day by default), that it is still running."""


class ToolExecutor:
    def __init__(
        self,
        registry: ToolRegistry,
        *,
        timeout_seconds: float,
        ledger: Ledger | None = None,
        idempotency_ttl: float = 86_400.0,
    ) -> None:
        self.registry = registry
        self._timeout = timeout_seconds
        self._ledger = ledger
        self._ttl = idempotency_ttl

    async def run(
        self,
        call: ToolCall,
        *,
        agent_tools: Collection[str],
        context: ToolContext,
        idempotency_scope: str | None = None,
        approved: bool = False,
        resume_pending: bool = False,
    ) -> ToolResult:
        """Run ``call``. ``idempotency_scope`` identifies it for keyed tools (without one they run
        unkeyed); ``approved``: a reviewer approved this call; ``resume_pending``: a pending claim on its
        key belongs to an attempt that died, so the call runs again under the same key."""
        started = time.perf_counter()
        error: ToolError | None = None
        content = ""
        try:
            content = await self._execute(
                call,
                agent_tools,
                context,
                idempotency_scope,
                approved=approved,
                resume_pending=resume_pending,
            )
        except ToolError as failure:
            error = failure
            content = json.dumps({"error": failure.to_dict()})
        step = ToolStep(
            tool=call.name,
            call_id=call.id,
            outcome=error.outcome if error else "ok",
            args_sha256=audit.digest(call.arguments),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            error=error.message if error else None,
        )
        audit.record(step, caller=context.caller, agent=context.agent)
        return ToolResult(content, step)

    async def _execute(
        self,
        call: ToolCall,
        agent_tools: Collection[str],
        context: ToolContext,
        scope: str | None,
        *,
        approved: bool,
        resume_pending: bool,
    ) -> str:
        tool = authorize(call.name, agent_tools=agent_tools, caller=context.caller, registry=self.registry)
        if tool.requires_approval and not approved:
            raise ToolDenied(
                f"tool '{tool.name}' requires a reviewer's approval: run the agent through the tasks API "
                f"(POST /v1/agents/{context.agent}/tasks), where such a call waits for a decision"
            )
        try:
            raw = json.loads(call.arguments or "{}")
            args = tool.args.model_validate(raw)
        except json.JSONDecodeError as error:
            raise ToolArgumentsInvalid(f"arguments are not valid JSON: {error.msg}") from error
        except ValidationError as error:
            raise ToolArgumentsInvalid(f"invalid arguments: {_summary(error)}") from error
        if not (tool.keyed and self._ledger is not None and scope):
            return await self._invoke(tool, args, context)
        key = idempotency_key(context.agent, context.caller, scope)
        stored = await self._ledger.claim(key, self._timeout + PENDING_LEASE_MARGIN_SECONDS)
        if stored == PENDING and not resume_pending:
            raise ToolError(f"tool '{tool.name}': the same call is still running for an earlier attempt")
        if stored is not None and stored != PENDING:
            return stored
        try:
            result = await self._invoke(tool, args, dataclasses.replace(context, idempotency_key=key))
        except BaseException:
            await self._ledger.release(key)
            raise
        await self._ledger.complete(key, result, self._ttl)
        return result

    async def _invoke(self, tool: Tool, args: BaseModel, context: ToolContext) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                result = await tool.handler(args, context)
        except TimeoutError as error:
            raise ToolTimeout(f"tool '{tool.name}' did not finish within {self._timeout:g}s") from error
        except ToolError:
            raise
        except Exception as error:
            # A bug or an outage in the tool: operators get the traceback, the model only the fact.
            log.exception("tool %s failed", tool.name)
            raise ToolError(f"tool '{tool.name}' failed: {type(error).__name__}") from error
        return result if isinstance(result, str) else json.dumps(result)


def _summary(error: ValidationError) -> str:
    """Field paths and messages, without echoing the (possibly sensitive) input values."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'arguments'}: {item['msg']}"
        for item in error.errors()
    )


def idempotency_key(agent: str, caller: Caller, scope: str) -> str:
    """The key a side-effecting call of ``agent`` runs at most once under, for ``caller`` in its tenant."""
    return audit.digest(json.dumps([agent, caller.tenant, caller.id, scope]))
