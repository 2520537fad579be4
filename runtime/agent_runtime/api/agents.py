"""``/v1/agents``: list the agents and run one with optional conversation memory."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from agent_runtime.api.deps import IDEMPOTENCY_KEY_PARAMETER, CallerDep, ServicesDep, run_options
from agent_runtime.api.limits import check_prompt_size
from agent_runtime.api.schemas import AgentInfo, AgentList, InvokeRequest, InvokeResponse, error_responses

router = APIRouter(prefix="/v1/agents", tags=["agents"])


@router.get("", response_model=AgentList, responses=error_responses(401))
async def list_agents(runtime: ServicesDep, caller: CallerDep) -> AgentList:
    """The configured agents and the tools each may use."""
    return AgentList(
        agents=[
            AgentInfo(
                name=agent.name, description=agent.description, model=agent.model, tools=list(agent.tools)
            )
            for agent in runtime.catalog
        ]
    )


@router.post(
    "/{agent}/invoke",
    response_model=InvokeResponse,
    responses=error_responses(400, 401, 404, 413, 422, 429, 502, 503, 504),
    openapi_extra=IDEMPOTENCY_KEY_PARAMETER,
)
async def invoke(
    agent: str, body: InvokeRequest, request: Request, runtime: ServicesDep, caller: CallerDep
) -> InvokeResponse:
    """Run the agent to its answer; the response carries the trace of every model and tool call."""
    definition = runtime.catalog.get(agent)
    messages = body.as_messages()
    check_prompt_size(
        messages, runtime.settings.max_prompt_chars, "input" if body.input is not None else "messages"
    )
    conversation_id = body.conversation_id or (uuid.uuid4().hex if definition.memory.persist else None)
    options = run_options(request, caller, conversation_id=conversation_id, task_class=body.task_class)
    result = await runtime.runner.run(definition, messages, options)
    return InvokeResponse(
        agent=result.agent,
        answer=result.answer,
        conversation_id=result.conversation_id,
        usage=result.usage,
        steps=result.steps,
    )
