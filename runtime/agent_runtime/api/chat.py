"""The OpenAI-compatible surface: ``/v1/chat/completions`` (plain and SSE streaming) and ``/v1/models``.

``model`` names the agent, so any OpenAI client can talk to an agent; the agent's own definition decides
the real model, tools and limits. The conversation is the messages the client sends (stateless, as in
OpenAI's API). Streaming chunks are shaped exactly as OpenAI's, including the final usage chunk when
``stream_options.include_usage`` is set.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from agent_runtime.api.deps import IDEMPOTENCY_KEY_PARAMETER, CallerDep, ServicesDep, run_options
from agent_runtime.api.errors import bug_response
from agent_runtime.api.limits import check_prompt_size
from agent_runtime.api.schemas import (
    ChatCompletionChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ModelInfo,
    ModelList,
    error_responses,
)
from agent_runtime.errors import AgentRuntimeError
from agent_runtime.llm import TextDelta
from agent_runtime.runner import RunResult

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


@router.get("/models", response_model=ModelList, responses=error_responses(401))
async def list_models(runtime: ServicesDep, caller: CallerDep) -> ModelList:
    """The agents, as OpenAI models, so clients that list models before chatting work."""
    return ModelList(data=[ModelInfo(id=agent.name) for agent in runtime.catalog])


@router.post(
    "/chat/completions",
    response_model=ChatCompletionResponse,
    responses={
        **error_responses(400, 401, 404, 413, 422, 429, 502, 503, 504),
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    },
    openapi_extra=IDEMPOTENCY_KEY_PARAMETER,
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, runtime: ServicesDep, caller: CallerDep
) -> ChatCompletionResponse | StreamingResponse:
    """Chat with the agent named by ``model``; with ``stream`` the answer arrives as server-sent events."""
    agent = runtime.catalog.get(body.model, request_field="model")
    messages = [message.as_message() for message in body.messages]
    check_prompt_size(messages, runtime.settings.max_prompt_chars, "messages")
    completion_id = f"chatcmpl-{os.urandom(16).hex()}"
    created = int(time.time())
    options = run_options(request, caller, task_class=(body.metadata or {}).get("task_class"))
    if not body.stream:
        result = await runtime.runner.run(agent, messages, options)
        return ChatCompletionResponse(
            id=completion_id,
            created=created,
            model=agent.name,
            choices=[
                ChatCompletionChoice(
                    message=ChatCompletionMessage(content=result.answer), finish_reason=result.finish_reason
                )
            ],
            usage=result.usage,
        )
    events = runtime.runner.stream(agent, messages, options)
    # Run to the first event before answering, so failures of the first model call get their real status.
    try:
        first = await anext(events)
    except AgentRuntimeError:
        await events.aclose()
        raise
    chunks = _Chunks(
        completion_id, created, agent.name, bool(body.stream_options and body.stream_options.include_usage)
    )
    return StreamingResponse(
        chunks.sse(first, events, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


class _Chunks:
    """Serialises run events as OpenAI ``chat.completion.chunk`` server-sent events."""

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self._base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage

    async def sse(
        self,
        first: TextDelta | RunResult,
        rest: AsyncGenerator[TextDelta | RunResult, None],
        request: Request,
    ) -> AsyncIterator[str]:
        """The run's events as chunks, ``[DONE]`` after the last; a failure ends the stream with an error
        event instead.

        Headers are sent, so no failure can change the status: it travels in-band, as OpenAI's API reports
        stream errors. A bug too: raised on, it would reach the server, which logs it and cuts the
        connection, leaving the client a broken response without an error event.
        """
        try:
            yield self._choice({"role": "assistant", "content": ""})
            event = first
            while True:
                if isinstance(event, RunResult):
                    yield self._choice({}, finish_reason=event.finish_reason)
                    if self._include_usage:
                        yield _event({**self._base, "choices": [], "usage": event.usage.model_dump()})
                    yield "data: [DONE]\n\n"
                    return
                if event.text:
                    yield self._choice({"content": event.text})
                event = await anext(rest)
        except AgentRuntimeError as error:
            yield _event({"error": error.to_dict()})
        except Exception as error:  # noqa: BLE001 - a bug: internal_error to the client, the traceback logged
            answer = bug_response(error, request.method, request.url.path)
            yield f"data: {bytes(answer.body).decode()}\n\n"
        finally:
            await rest.aclose()

    def _choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        chunk: dict[str, Any] = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return _event(chunk)


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"
