"""Request and response bodies of the HTTP API; they are also its OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent_runtime.memory.base import Message
from agent_runtime.trace import ModelStep, TokenUsage, ToolStep

MAX_MESSAGES = 256


def _valid_unicode(value: Any, info: ValidationInfo) -> Any:
    """Refuse a string holding a lone UTF-16 surrogate (JSON's ``"\\ud800"``), before anything uses it.

    Python's ``json`` (FastAPI's parser) accepts one, and the string fails much later, wherever it is
    encoded: in the model call, the conversation store, an error message naming it - a 500, or a 502 that
    blames the model. Only such a string cannot be encoded as UTF-8. Pydantic's own JSON parser (the hot
    routes') refuses lone surrogates, so a string validated from JSON is not checked again: that keeps the
    hot routes' cost to a call per string. ASCII is skipped at once (``isascii`` is O(1)).
    """
    if info.mode != "json" and isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "unpaired_surrogate", "contains an unpaired surrogate: send valid Unicode"
            ) from None
    return value


ValidUnicode = BeforeValidator(_valid_unicode)
"""The check of every string a request carries: valid Unicode, or a 422 naming its field. A constrained
string puts its constraints first, ``Annotated[str, StringConstraints(max_length=64), ValidUnicode]``:
constraints given after a validator (as ``Field`` arguments) are checked in Python, with vaguer messages."""

Text = Annotated[str, ValidUnicode]
"""A request's string without constraints."""

ShortText = Annotated[str, StringConstraints(max_length=64), ValidUnicode]
"""A request's name or label: 64 characters at most."""


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
        Text,
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
    name: ShortText | None = None

    def as_message(self) -> Message:
        message: Message = {"role": self.role, "content": self.content}
        if self.name:
            message["name"] = self.name
        return message


Messages = Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]


CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""What a caller may name a conversation (``#`` is the runtime's own, for bookkeeping beside one)."""

ConversationId = Annotated[str, StringConstraints(pattern=CONVERSATION_ID_PATTERN), ValidUnicode]
"""A conversation id in a request; the pattern alone refuses a lone surrogate too, but in pydantic's words
("unable to parse raw data as a unicode string")."""


class InvokeRequest(BaseModel):
    """Either ``input`` (one user message) or ``messages``; with ``conversation_id`` the agent remembers."""

    model_config = ConfigDict(extra="forbid")

    input: Text | None = Field(default=None, description="The user's message.")
    messages: Messages | None = Field(default=None, description="Messages to add to the conversation.")
    conversation_id: ConversationId | None = Field(
        default=None,
        description="Continue your conversation of this id (a conversation is its caller's: another caller's "
        "id names a new, empty conversation of yours); a new id is returned when omitted.",
    )
    task_class: ShortText | None = Field(
        default=None, description="Kind of task, for the agent's model routing policy."
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

    model: Text = Field(description="The agent's name.")
    messages: Messages
    stream: bool = False
    stream_options: StreamOptions | None = None
    metadata: dict[Text, Text] | None = Field(
        default=None, description="OpenAI's metadata; 'task_class' feeds the agent's model routing policy."
    )


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: str = Field(
        default="stop",
        description="Why the answer ended: stop, or length when it reached the agent's output cap (cut short).",
    )


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
    next: str | None = Field(
        description="Pass as `after` for the conversations after these; null when none follow (a page may "
        "be shorter than `limit`, even empty, and still have a `next`)."
    )


class ConversationHistory(BaseModel):
    id: str
    messages: list[dict[str, Any]] = Field(
        description="Its newest messages (before `before`, if given), oldest first, redacted as stored."
    )
    first: int = Field(description="The position of the first of them in the conversation (0 is its first).")
    length: int = Field(description="How many messages the conversation held when read.")
    complete: bool = Field(
        description="Whether no older message precedes these (else ask again with `before` = `first`)."
    )


class TenantErasure(BaseModel):
    tenant: str
    deleted: int = Field(description="How many conversations were deleted.")
