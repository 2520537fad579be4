"""The Bedrock provider over real HTTP: boto3's own client against the local Bedrock Runtime, alone and inside
the runtime (its tool loop, its retries, and the OpenAI-compatible API a stock ``openai`` client calls)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest
from canned_bedrock import CannedBedrock
from runtime_helpers import AGENTS, API_KEYS, SCRIPT, USER_KEY, Runtime, RuntimeFactory, make_registry

from agent_runtime.api import create_app
from agent_runtime.errors import ConfigurationError, ModelError
from agent_runtime.llm import PROGRESS, ChatModel, Completion, Progress, TextDelta, ToolCall, create_model
from agent_runtime.llm_bedrock import BedrockModel
from agent_runtime.settings import Settings
from agent_runtime.testing import (
    BedrockServer,
    Faults,
    Rule,
    Script,
    ScriptedGuardrail,
    ServerThread,
    StreamInterruption,
    embed,
)
from agent_runtime.testing.bedrock_server import TEST_ACCESS_KEY_ID
from agent_runtime.testing.serve import bind_socket

T = TypeVar("T")

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
REGION = "eu-west-1"
STORY = "once upon a time there was an agent"
LONG = " ".join(f"word{n}" for n in range(300))
GUARDRAIL = ScriptedGuardrail(
    "gr-test",
    version="3",
    blocked_words=("forbidden",),
    blocked_input_message="I cannot discuss that.",
    blocked_output_message="That answer was withheld.",
)
ERRORS = [
    (400, "ValidationException", False),
    (403, "AccessDeniedException", False),
    (404, "ResourceNotFoundException", False),
    (408, "ModelTimeoutException", True),
    (429, "ThrottlingException", True),
    (500, "InternalServerException", True),
    (503, "ServiceUnavailableException", True),
]
BEDROCK_SCRIPT = Script(
    [
        Rule(pattern=r"^leak it$", reply="the forbidden answer"),
        Rule(pattern=r"^long$", reply=LONG),
        *(Rule(pattern=f"^status {status}$", status=status) for status, _, _ in ERRORS),
        *SCRIPT.rules,
    ]
)
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate arithmetic.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "clock", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[BedrockServer]:
    with BedrockServer(BEDROCK_SCRIPT, region=REGION, guardrails=[GUARDRAIL]) as server:
        yield server


@pytest.fixture
def bedrock(bedrock_server: BedrockServer, monkeypatch: pytest.MonkeyPatch) -> BedrockServer:
    """The shared server with this test's calls only, and an AWS environment that points at it: fake
    static credentials, the region, the SDK's endpoint override, no profile or config file of the host."""
    bedrock_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in bedrock_server.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return bedrock_server


def settings(**overrides: Any) -> Settings:
    return Settings(**({"llm_provider": "bedrock", "llm_auth": "aws"} | overrides))


def run(scenario: Callable[[ChatModel], Awaitable[T]], **overrides: Any) -> T:
    """``scenario`` with the model ``create_model`` builds from Bedrock settings (closed afterwards)."""

    async def main() -> T:
        model = create_model(settings(**overrides))
        try:
            return await scenario(model)
        finally:
            await model.close()

    return asyncio.run(main())


async def answer(
    model: ChatModel,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    streaming: bool = False,
    **options: Any,
) -> tuple[list[str], Completion]:
    """The streamed pieces of text (none unless ``streaming``) and the completion of one call."""
    if not streaming:
        return [], await model.complete(MODEL, messages, tools or (), **options)
    pieces: list[str] = []
    async for event in model.stream(MODEL, messages, tools or (), **options):
        if isinstance(event, TextDelta):
            pieces.append(event.text)
        elif isinstance(event, Completion):
            return pieces, event
    raise AssertionError("the stream ended without a completion")


def ask(
    text: str, *, streaming: bool = False, tools: list[dict[str, Any]] | None = None, **settings: Any
) -> tuple[list[str], Completion]:
    """One user message in, (pieces, completion) out."""
    return run(lambda model: answer(model, [user(text)], tools, streaming=streaming), **settings)


def failure(text: str, *, streaming: bool = False, **settings: Any) -> ModelError:
    return failure_of(lambda model: answer(model, [user(text)], streaming=streaming), **settings)


def failure_of(scenario: Callable[[ChatModel], Awaitable[Any]], **settings: Any) -> ModelError:
    with pytest.raises(ModelError) as raised:
        run(scenario, **settings)
    return raised.value


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def pumping() -> list[str]:
    """The threads inside a stream's pump, reading a Bedrock stream."""
    pump = BedrockModel._pump.__code__
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    found = []
    for ident, frame in sys._current_frames().items():
        while frame is not None and frame.f_code is not pump:
            frame = frame.f_back
        if frame is not None:
            found.append(names.get(ident, str(ident)))
    return found


async def eventually(condition: Callable[[], object], seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


# -- translation ---------------------------------------------------------------------------------------------


def test_a_conversation_with_tool_rounds_is_translated_to_converse(bedrock: BedrockServer) -> None:
    failed = json.dumps({"error": {"code": "tool_timeout", "message": "the tool did not finish"}})
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "add 1+1 and 2+2"}]},
        {
            "role": "assistant",
            "content": "Computing.",
            "tool_calls": [
                tool_call("call_a", "calculator", '{"expression": "1+1"}'),
                tool_call("call_b", "calculator", '{"expression": "2+2"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "2"},
        {"role": "tool", "tool_call_id": "call_b", "content": failed},
        {"role": "developer", "content": "Relevant long-term memory:\n- sums"},
        {"role": "assistant", "content": "2, and the second failed."},
        {"role": "user", "content": "retry the second"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call("call_c", "calculator", "{2+2")]},
        {"role": "tool", "tool_call_id": "call_c", "content": "4"},
    ]
    _, completion = run(lambda model: answer(model, conversation, [CALCULATOR, CLOCK]))

    [call] = bedrock.calls
    assert (call.operation, call.model_id) == ("converse", MODEL)
    assert call.body["system"] == [{"text": "Be brief."}, {"text": "Relevant long-term memory:\n- sums"}]
    assert call.body["messages"] == [
        {"role": "user", "content": [{"text": "add 1+1 and 2+2"}]},
        {
            "role": "assistant",
            "content": [
                {"text": "Computing."},
                {"toolUse": {"toolUseId": "call_a", "name": "calculator", "input": {"expression": "1+1"}}},
                {"toolUse": {"toolUseId": "call_b", "name": "calculator", "input": {"expression": "2+2"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "call_a", "content": [{"text": "2"}]}},
                {"toolResult": {"toolUseId": "call_b", "content": [{"text": failed}], "status": "error"}},
            ],
        },
        {"role": "assistant", "content": [{"text": "2, and the second failed."}]},
        {"role": "user", "content": [{"text": "retry the second"}]},
        # Arguments that are not a JSON object (the runtime refused to run them) go back as {}.
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "call_c", "name": "calculator", "input": {}}}],
        },
        {"role": "user", "content": [{"toolResult": {"toolUseId": "call_c", "content": [{"text": "4"}]}}]},
    ]
    assert call.body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "calculator",
                    "description": "Evaluate arithmetic.",
                    "inputSchema": {"json": CALCULATOR["function"]["parameters"]},
                }
            },
            {"toolSpec": {"name": "clock", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ]
    }
    assert call.body["inferenceConfig"] == {"maxTokens": 4096}
    assert "guardrailConfig" not in call.body
    authorization = call.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/")
    assert f"/{REGION}/bedrock/aws4_request" in authorization
    assert (completion.content, completion.finish_reason) == ("4", "stop")


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "stream"])
def test_a_plain_answer_with_its_usage(
    bedrock: BedrockServer, streaming: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.usage")
    pieces, completion = ask("story", streaming=streaming)
    assert (completion.model, completion.content, completion.finish_reason) == (MODEL, STORY, "stop")
    assert completion.tool_calls == ()
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 8)
    assert completion.usage.total_tokens == 10
    if streaming:
        assert len(pieces) == 8 and "".join(pieces) == STORY
    [record] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentstage.usage"]
    assert record | {"latency_ms": 0} == {
        "event": "model_call",
        "operation": "chat",
        "model": MODEL,
        "prompt_tokens": 2,
        "completion_tokens": 8,
        "total_tokens": 10,
        "latency_ms": 0,
    }
    assert [call.operation for call in bedrock.calls] == ["converse-stream" if streaming else "converse"]


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "stream"])
def test_several_tool_calls_in_one_turn(bedrock: BedrockServer, streaming: bool) -> None:
    pieces, completion = ask("two tools", streaming=streaming, tools=[CALCULATOR])
    assert pieces == []
    assert completion.content is None and completion.finish_reason == "tool_calls"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in completion.tool_calls] == [
        ("call_1_0", "calculator", {"expression": "1+1"}),
        ("call_1_1", "calculator", {"expression": "1+1"}),
    ]
    assert completion.usage.completion_tokens == 10


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "stream"])
def test_the_output_cap_is_sent_and_a_cut_answer_is_length(bedrock: BedrockServer, streaming: bool) -> None:
    pieces, completion = run(
        lambda model: answer(model, [user("story")], streaming=streaming, max_output_tokens=3)
    )
    assert bedrock.calls[0].body["inferenceConfig"] == {"maxTokens": 3}
    assert (completion.content, completion.finish_reason) == ("once upon a", "length")
    assert "".join(pieces) == ("once upon a" if streaming else "")


def test_header_hooks_add_trace_context_to_every_call(bedrock: BedrockServer) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def scenario() -> None:
        model = BedrockModel.from_settings(
            settings(), [lambda headers: headers.update(traceparent=traceparent)]
        )
        try:
            await answer(model, [user("story")])
            await answer(model, [user("story")], streaming=True)
            await model.embed(["hello"], model=TITAN, dimensions=256)
        finally:
            await model.close()

    asyncio.run(scenario())
    assert [call.headers["traceparent"] for call in bedrock.calls] == [traceparent] * 3


# -- failures ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "stream"])
@pytest.mark.parametrize(("status", "error_type", "retryable"), ERRORS)
def test_error_responses_say_what_bedrock_said_and_whether_to_retry(
    bedrock: BedrockServer, status: int, error_type: str, retryable: bool, streaming: bool
) -> None:
    error = failure(f"status {status}", streaming=streaming)
    assert error.message.startswith(
        f"Bedrock answered {error_type} for model '{MODEL}': scripted failure (HTTP {status})"
    )
    assert error.retryable is retryable
    assert len(bedrock.calls) == 1, "botocore does not retry: the runtime's resilience layer does"


def test_access_denied_says_which_permission_is_missing(bedrock: BedrockServer) -> None:
    assert "bedrock:InvokeModel" in failure("status 403").message


def test_the_service_validates_the_output_cap(bedrock: BedrockServer) -> None:
    error = failure("story", max_output_tokens=100_000)
    assert (
        "The maximum tokens you requested (100000) is outside the model's range of 1 to 8192" in error.message
    )
    assert not error.retryable


@pytest.mark.parametrize(
    ("exception", "retryable"),
    [
        ("modelStreamErrorException", True),
        ("throttlingException", True),
        ("serviceUnavailableException", True),
        ("internalServerException", True),
        ("validationException", False),
    ],
)
def test_an_exception_event_mid_stream_is_a_model_error(
    bedrock: BedrockServer, exception: str, retryable: bool
) -> None:
    bedrock.interruptions["*"] = StreamInterruption(after=3, exception=exception, message="broke off")
    pieces: list[str] = []

    async def scenario(model: ChatModel) -> None:
        async for event in model.stream(MODEL, [user("story")]):
            assert isinstance(event, TextDelta), "no completion after a failure"
            pieces.append(event.text)

    with pytest.raises(ModelError) as raised:
        run(scenario)
    assert pieces == ["once ", "upon "]
    code = exception[0].upper() + exception[1:]
    assert raised.value.message == f"Bedrock answered {code} for model '{MODEL}': broke off"
    assert raised.value.retryable is retryable


def test_a_stream_cut_before_its_end_is_a_retryable_error(bedrock: BedrockServer) -> None:
    bedrock.interruptions[MODEL] = StreamInterruption(after=2, exception=None)
    error = failure("story", streaming=True)
    assert (error.message, error.retryable) == ("the Bedrock stream ended before its messageStop event", True)


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "stream"])
def test_malformed_answers_and_timeouts_are_retryable(bedrock: BedrockServer, streaming: bool) -> None:
    bedrock.faults[MODEL] = Faults(rate_malformed=1.0)
    malformed = failure("story", streaming=streaming)
    assert (malformed.message, malformed.retryable) == (
        "the model endpoint answered with a malformed response",
        True,
    )
    bedrock.faults.clear()
    timeout = failure("slow", streaming=streaming, llm_timeout_seconds=0.3)
    assert (timeout.message, timeout.retryable) == ("Bedrock timed out", True)
    assert len(bedrock.calls) == 2, "one malformed answer, one timeout: neither was retried by botocore"


def _canned(client: CannedBedrock, streaming: bool) -> list[TextDelta | Progress | Completion]:
    """The events of one call (a plain call's completion alone) to ``client``."""

    async def call() -> list[TextDelta | Progress | Completion]:
        model = BedrockModel(client)
        try:
            if not streaming:
                return [await model.complete(MODEL, [user("hi")])]
            return [event async for event in model.stream(MODEL, [user("hi")])]
        finally:
            await model.close()

    return asyncio.run(call())


def _turn(*content: dict[str, Any], stop: Any = "end_turn") -> CannedBedrock:
    message = {"role": "assistant", "content": list(content)}
    return CannedBedrock({"output": {"message": message}, "stopReason": stop, "usage": {"inputTokens": 1}})


def _streamed(*events: dict[str, Any], stop: Any = "end_turn", usage: Any = 1) -> CannedBedrock:
    """A stream of ``events`` between its start and its stop, then its usage."""
    start, end = {"messageStart": {"role": "assistant"}}, {"messageStop": {"stopReason": stop}}
    return CannedBedrock(events=[start, *events, end, {"metadata": {"usage": {"inputTokens": usage}}}])


def _delta(**delta: Any) -> dict[str, Any]:
    return {"contentBlockDelta": {"contentBlockIndex": 0, "delta": delta}}


def _tool_start(tool_use_id: Any = "tooluse_1") -> dict[str, Any]:
    start = {"toolUse": {"toolUseId": tool_use_id, "name": "calculator"}}
    return {"contentBlockStart": {"contentBlockIndex": 0, "start": start}}


WRONG_TYPES: dict[str, tuple[CannedBedrock, bool]] = {
    "text that is a number": (_turn({"text": 123}), False),
    "a tool use id that is a number": (
        _turn({"toolUse": {"toolUseId": 7, "name": "calculator", "input": {}}}, stop="tool_use"),
        False,
    ),
    "a stop reason that is a number": (_turn({"text": "Hi"}, stop=5), False),
    "streamed text that is a number": (_streamed(_delta(text="Hello, "), _delta(text=123)), True),
    "streamed input that is an object": (
        _streamed(_tool_start(), _delta(toolUse={"input": {"expression": "1+1"}}), stop="tool_use"),
        True,
    ),
    "a streamed tool use id that is a number": (
        _streamed(_tool_start(7), _delta(toolUse={"input": "{}"}), stop="tool_use"),
        True,
    ),
    "a streamed stop reason that is a number": (_streamed(_delta(text="Hi"), stop=5), True),
    "streamed usage that is a fraction": (_streamed(_delta(text="Hi"), usage=1.5), True),
}


@pytest.mark.parametrize(("client", "streaming"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_field_of_the_wrong_type_is_a_malformed_answer(client: CannedBedrock, streaming: bool) -> None:
    with pytest.raises(ModelError, match="malformed response"):
        _canned(client, streaming)


def test_tool_use_pieces_are_progress_and_metadata_nothing() -> None:
    """What the gateway's per-event timeout counts as progress: a piece of the answer, text or tool call."""
    pieces = (_delta(toolUse={"input": '{"expression": '}), _delta(toolUse={"input": '"1+1"}'}))
    *events, completion = _canned(_streamed(_tool_start(), *pieces, stop="tool_use"), streaming=True)
    assert events == [PROGRESS] * 3
    assert isinstance(completion, Completion) and completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("tooluse_1", "calculator", '{"expression": "1+1"}'),)


def test_an_unreachable_endpoint_is_retryable(
    bedrock: BedrockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bind_socket("127.0.0.1", 0) as probe:  # a free port that nobody listens on
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"http://127.0.0.1:{port}")
    error = failure("story")
    assert error.retryable and error.message.startswith("Bedrock is unreachable or dropped the connection")


def test_missing_credentials_are_a_configuration_error(
    bedrock: BedrockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(
        ConfigurationError, match="no usable AWS credentials to call Bedrock .*execution role"
    ):
        ask("story")
    assert bedrock.calls == [], "nothing unsigned was sent"


def test_the_settings_must_name_aws_auth_and_a_region(
    bedrock: BedrockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="set AGENTSTAGE_LLM_AUTH=aws") as raised:
        create_model(Settings(llm_provider="bedrock"))
    assert raised.value.field == "AGENTSTAGE_LLM_AUTH"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="needs a region: set AGENTSTAGE_AWS_REGION"):
        create_model(settings())
    assert isinstance(create_model(settings(aws_region=REGION)), BedrockModel)


# -- guardrails ----------------------------------------------------------------------------------------------


GUARDED = {"bedrock_guardrail_id": "gr-test", "bedrock_guardrail_version": "3"}


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "stream"])
@pytest.mark.parametrize(
    ("text", "canned"),
    [("tell me the forbidden thing", "I cannot discuss that."), ("leak it", "That answer was withheld.")],
    ids=["input", "output"],
)
def test_a_guardrail_intervention_is_a_content_filter_finish(
    bedrock: BedrockServer, text: str, canned: str, streaming: bool
) -> None:
    pieces, blocked = ask(text, streaming=streaming, **GUARDED)
    assert (blocked.content, blocked.finish_reason) == (canned, "content_filter")
    assert "".join(pieces) == (canned if streaming else "")


def test_without_the_guardrail_nothing_is_blocked_and_an_unknown_one_is_refused(
    bedrock: BedrockServer,
) -> None:
    assert ask("leak it")[1].content == "the forbidden answer"
    error = failure("story", bedrock_guardrail_id="gr-test", bedrock_guardrail_version="4")
    assert "The guardrail identifier or version provided in the request does not exist." in error.message
    assert not error.retryable


# -- embeddings ----------------------------------------------------------------------------------------------


def test_embeddings_are_titan_v2_calls_in_order(
    bedrock: BedrockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.usage")
    texts = [f"note number {n} about {'cats' if n % 2 else 'dogs'}" for n in range(20)]
    vectors = run(lambda model: model.embed(texts, model=TITAN, dimensions=256))
    assert vectors == [embed(text, 256) for text in texts]
    assert sorted(call.body["inputText"] for call in bedrock.calls) == sorted(texts)
    assert {(call.operation, call.model_id) for call in bedrock.calls} == {("invoke", TITAN)}
    assert bedrock.calls[0].body == {
        "inputText": bedrock.calls[0].body["inputText"],
        "dimensions": 256,
        "normalize": True,
    }
    [record] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentstage.usage"]
    assert (record["operation"], record["prompt_tokens"], record["total_tokens"]) == ("embeddings", 100, 100)
    error = failure_of(lambda model: model.embed(["x"], model=TITAN, dimensions=384))
    assert "#/dimensions: 384 is not a valid enum value" in error.message and not error.retryable


# -- stream hand-off -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pace", [0.0, 0.02], ids=["reader-ahead", "model-streaming"])
def test_a_stream_left_early_frees_its_thread_and_connection(bedrock: BedrockServer, pace: float) -> None:
    """Fast, the reader waits for buffer space; paced like a model, it waits for the next event: either
    way the thread ends and closes the connection, without the model being closed."""
    bedrock.pace = pace

    async def scenario(model: ChatModel) -> TextDelta | Completion:
        events = model.stream(MODEL, [user("long")])
        first = await anext(events)
        assert pumping(), "the thread reads the stream"
        await events.aclose()
        await eventually(lambda: not pumping())
        if pace:
            await eventually(lambda: bedrock.abandoned)
        return first

    assert run(scenario) == TextDelta("word0 ")
    if pace:
        assert [call.operation for call in bedrock.abandoned] == ["converse-stream"]


def test_a_stream_cancelled_while_waiting_for_the_model_frees_its_thread(bedrock: BedrockServer) -> None:
    bedrock.pace = 0.2

    async def scenario(model: ChatModel) -> None:
        events: AsyncGenerator[TextDelta | Completion, None] = model.stream(MODEL, [user("long")])
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):  # as the gateway bounds each wait for an event
                await anext(events)
                await anext(events)
        await events.aclose()
        await eventually(lambda: not pumping())
        await eventually(lambda: bedrock.abandoned)

    run(scenario)


# -- inside the runtime --------------------------------------------------------------------------------------


def bedrock_runtime(runtime_factory: RuntimeFactory, **overrides: Any) -> Runtime:
    return runtime_factory(llm_provider="bedrock", llm_auth="aws", default_model=MODEL, **overrides)


def test_the_runtime_loop_runs_a_tool_through_bedrock(
    bedrock: BedrockServer, runtime_factory: RuntimeFactory
) -> None:
    runtime = bedrock_runtime(runtime_factory)
    body = runtime.invoke("assistant", "calc 6*7").json()
    assert body["answer"] == "42"
    model_1, tool, model_2 = body["steps"]
    assert (model_1["model"], model_1["finish_reason"], model_1["tool_calls"]) == (
        MODEL,
        "tool_calls",
        ["calculator"],
    )
    assert (tool["tool"], tool["outcome"]) == ("calculator", "ok")
    assert model_2["finish_reason"] == "stop"
    assert (
        body["usage"]["total_tokens"]
        == model_1["usage"]["total_tokens"] + model_2["usage"]["total_tokens"]
        > 0
    )

    first, second = bedrock.calls
    assert first.body["system"] == [{"text": "Be brief."}]
    assert "calculator" in [tool["toolSpec"]["name"] for tool in first.body["toolConfig"]["tools"]]
    [use] = [block["toolUse"] for block in second.body["messages"][1]["content"]]
    assert use == {"toolUseId": "call_2_0", "name": "calculator", "input": {"expression": "6*7"}}
    assert second.body["messages"][2] == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": "call_2_0", "content": [{"text": "42"}]}}],
    }


def test_results_of_several_calls_are_one_user_turn(
    bedrock: BedrockServer, runtime_factory: RuntimeFactory
) -> None:
    body = bedrock_runtime(runtime_factory).invoke("assistant", "two tools").json()
    assert body["answer"] == "2\n2"
    results = bedrock.calls[-1].body["messages"][-1]
    assert [block["toolResult"]["toolUseId"] for block in results["content"]] == ["call_2_0", "call_2_1"]


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_throttling_is_retried_by_the_runtime(
    bedrock: BedrockServer, runtime_factory: RuntimeFactory, streaming: bool
) -> None:
    bedrock.faults[MODEL] = Faults(rate_429=0.5, seed=7)  # seed 7: throttled twice, then answered
    runtime = bedrock_runtime(runtime_factory, llm_max_retries=2, retry_base_seconds=0.01)
    if streaming:
        reply = openai.OpenAI(
            base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0
        ).chat.completions.create(model="assistant", messages=[user("story")], stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in reply if chunk.choices) == STORY
    else:
        assert runtime.invoke("assistant", "story").json()["answer"] == STORY
    assert len(bedrock.calls) == 3


def test_a_validation_error_is_not_retried(bedrock: BedrockServer, runtime_factory: RuntimeFactory) -> None:
    runtime = bedrock_runtime(runtime_factory, llm_max_retries=2, retry_base_seconds=0.01)
    response = runtime.invoke("assistant", "status 400")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "model_error"
    assert "ValidationException" in response.json()["error"]["message"]
    assert len(bedrock.calls) == 1


def test_the_guardrail_goes_with_every_call_of_a_run(
    bedrock: BedrockServer, runtime_factory: RuntimeFactory
) -> None:
    runtime = bedrock_runtime(runtime_factory, **GUARDED)
    assert runtime.invoke("assistant", "calc 6*7").json()["answer"] == "42"
    stream = openai.OpenAI(
        base_url=f"{runtime.url}/v1", api_key=USER_KEY, max_retries=0
    ).chat.completions.create(model="assistant", messages=[user("calc 2**10")], stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "1024"
    blocked = runtime.invoke("assistant", "tell me the forbidden thing").json()
    assert blocked["answer"] == "I cannot discuss that."
    assert blocked["steps"][0]["finish_reason"] == "content_filter"

    config = {"guardrailIdentifier": "gr-test", "guardrailVersion": "3"}
    streamed = config | {"streamProcessingMode": "sync"}
    assert [(call.operation, call.body["guardrailConfig"]) for call in bedrock.calls] == [
        ("converse", config),
        ("converse", config),
        ("converse-stream", streamed),
        ("converse-stream", streamed),
        ("converse", config),
    ]


# -- end to end: configured from the environment, called by the stock openai client ------------------------


@pytest.fixture
def runtime_on_bedrock(
    bedrock: BedrockServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[str]:
    """The runtime as a deployment configures it: AGENTSTAGE_* variables only, the model on Bedrock."""
    environment = {
        "AGENTSTAGE_LLM_PROVIDER": "bedrock",
        "AGENTSTAGE_LLM_AUTH": "aws",
        "AGENTSTAGE_AWS_REGION": REGION,
        "AGENTSTAGE_DEFAULT_MODEL": MODEL,
        "AGENTSTAGE_LLM_MAX_RETRIES": "0",
        "AGENTSTAGE_AGENTS": json.dumps(AGENTS),
        "AGENTSTAGE_API_KEYS": json.dumps(API_KEYS),
        "AGENTSTAGE_SQLITE_PATH": str(tmp_path / "state.db"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with ServerThread(create_app(registry=make_registry())) as server:
        yield server.url


def test_the_openai_client_talks_to_an_agent_on_bedrock(
    runtime_on_bedrock: str, bedrock: BedrockServer
) -> None:
    client = openai.OpenAI(base_url=f"{runtime_on_bedrock}/v1", api_key=USER_KEY, max_retries=0)
    reply = client.chat.completions.create(model="assistant", messages=[user("story")])
    assert reply.choices[0].message.content == STORY
    assert reply.usage is not None  # Bedrock's counts: words of the instructions and "story", the answer's
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (5, 8, 13)

    stream = client.chat.completions.create(
        model="assistant", messages=[user("story")], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == STORY
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "streamed in pieces"

    tool = client.chat.completions.create(model="assistant", messages=[user("calc 2**10")])
    assert tool.choices[0].message.content == "1024"
    assert [call.operation for call in bedrock.calls] == [
        "converse",
        "converse-stream",
        "converse",
        "converse",
    ]
    assert {call.model_id for call in bedrock.calls} == {MODEL}
