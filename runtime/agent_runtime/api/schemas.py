"""Request and response bodies of the HTTP API; they are also its OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from agent_runtime.memory.base import Message
from agent_runtime.trace import ModelStep, TokenUsage, ToolStep

MAX_MESSAGES = 256


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. unknown_agent, payload_too_large.")
    message: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(default=None, description="The request field at fault, when there is one.")
    budget: dict[str, Any] | None = Field(
        default=None,
        description="With quota_exceeded (429): the budget's name, scope, subject, metric, limit, remaining "
        "and reset_seconds (also sent as Retry-After).",
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _text_of_parts(content: Any) -> Any:
    """OpenAI's content-part list, joined to plain text; only text parts are supported."""
    if not isinstance(content, list):
        return content
    texts = []
    for part in content:
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            raise ValueError('content parts must be {"type": "text", "text": "..."}')
        texts.append(part["text"])
    return "".join(texts)


class ChatMessage(BaseModel):
    """A message as OpenAI shapes it. Tools run inside the runtime, so callers send no tool messages."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[
        str,
        BeforeValidator(_text_of_parts),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                            "required": ["type", "text"],
                        },
                    },
                ]
            }
        ),
    ]
    name: str | None = Field(default=None, max_length=64)

    def as_message(self) -> Message:
        message: Message = {"role": self.role, "content": self.content}
        if self.name:
            message["name"] = self.name
        return message


Messages = Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]


CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""What a caller may name a conversation (``#`` is the runtime's own, for bookkeeping beside one)."""


class InvokeRequest(BaseModel):
    """Either ``input`` (one user message) or ``messages``; with ``conversation_id`` the agent remembers."""

    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(default=None, description="The user's message.")
    messages: Messages | None = Field(default=None, description="Messages to add to the conversation.")
    conversation_id: str | None = Field(
        default=None,
        pattern=CONVERSATION_ID_PATTERN,
        description="Continue your conversation of this id (a conversation is its caller's: another caller's "
        "id names a new, empty conversation of yours); a new id is returned when omitted.",
    )
    task_class: str | None = Field(
        default=None, max_length=64, description="Kind of task, for the agent's model routing policy."
    )

    @model_validator(mode="after")
    def _one_input(self) -> InvokeRequest:
        if (self.input is None) == (self.messages is None):
            raise ValueError("send exactly one of 'input' and 'messages'")
        return self

    def as_messages(self) -> list[Message]:
        if self.input is not None:
            return [{"role": "user", "content": self.input}]
        return [message.as_message() for message in self.messages or ()]


Step = Annotated[ModelStep | ToolStep, Field(discriminator="kind")]


class InvokeResponse(BaseModel):
    agent: str
    answer: str
    conversation_id: str | None = Field(description="Send it back to continue the conversation.")
    usage: TokenUsage
    steps: list[Step] = Field(description="Every model call and tool call of the run, in order.")


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; ``model`` names the agent. Sampling parameters are the agent's to choose and
    are ignored, so stock clients that send them keep working."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="The agent's name.")
    messages: Messages
    stream: bool = False
    stream_options: StreamOptions | None = None
    metadata: dict[str, str] | None = Field(
        default=None, description="OpenAI's metadata; 'task_class' feeds the agent's model routing policy."
    )


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: Literal["stop"] = "stop"


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: TokenUsage


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "agentstage"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class AgentInfo(BaseModel):
    name: str
    description: str
    model: str
    tools: list[str]


class AgentList(BaseModel):
    agents: list[AgentInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="'ok' or the failure, per dependency.")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the JSON error body for these statuses."""
    return {status: {"model": ErrorResponse} for status in statuses}


class ConversationInfo(BaseModel):
    id: str
    created_at: float = Field(description="Seconds since the epoch of its first message.")
    updated_at: float = Field(description="Seconds since the epoch of its last change.")
    messages: int = Field(description="How many messages it holds.")


class ConversationList(BaseModel):
    conversations: list[ConversationInfo] = Field(description="Most recently changed first.")


class ConversationHistory(BaseModel):
    id: str
    messages: list[dict[str, Any]] = Field(description="Oldest first, redacted as stored.")


class TenantErasure(BaseModel):
    tenant: str
    deleted: int = Field(description="How many conversations were deleted.")
