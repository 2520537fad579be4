"""The local Bedrock Runtime speaks the service's wire format (botocore parses its frames and errors) and
refuses what the service refuses: unsigned calls, malformed conversations, bad embedding requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import ClientError

from agent_runtime.testing import BedrockServer, Rule, Script, ScriptedToolCall
from agent_runtime.testing.bedrock_server import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY
from agent_runtime.testing.eventstream import encode_event, encode_exception

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
TOOLS = {"tools": [{"toolSpec": {"name": "clock", "inputSchema": {"json": {"type": "object"}}}}]}


@pytest.fixture(scope="module")
def server() -> Iterator[BedrockServer]:
    script = Script([Rule(pattern="^time$", tool_calls=(ScriptedToolCall(name="clock"),))])
    with BedrockServer(script, region="eu-west-1") as bedrock:
        yield bedrock


def client(server: BedrockServer, region: str = "eu-west-1") -> Any:
    return boto3.session.Session().client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=server.url,
        aws_access_key_id=TEST_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )


def refusal(call: Any, **request: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**request)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def text(role: str, value: str) -> dict[str, Any]:
    return {"role": role, "content": [{"text": value}]}


def test_frames_are_what_botocore_parses() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hé"}}))
    buffer.add_data(encode_exception("throttlingException", "slow down"))
    event, exception = list(buffer)
    assert event.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(event.payload) == {"contentBlockIndex": 0, "delta": {"text": "hé"}}
    assert exception.headers[":exception-type"] == "throttlingException"
    assert exception.to_response_dict()["status_code"] == 400
    corrupt = EventStreamBuffer()
    corrupt.add_data(encode_event("messageStop", {"stopReason": "end_turn"})[:-1] + b"\x00")
    with pytest.raises(ChecksumMismatch):
        list(corrupt)


def test_a_stream_through_boto3(server: BedrockServer) -> None:
    response = client(server).converse_stream(
        modelId=MODEL, messages=[text("user", "time")], toolConfig=TOOLS
    )
    events = list(response["stream"])
    assert [next(iter(event)) for event in events] == [
        "messageStart",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[1]["contentBlockStart"]["start"]["toolUse"] == {"toolUseId": "call_1_0", "name": "clock"}
    assert "".join(event["contentBlockDelta"]["delta"]["toolUse"]["input"] for event in events[2:4]) == "{}"
    assert events[5]["messageStop"]["stopReason"] == "tool_use"


def test_unsigned_or_wrongly_signed_calls_are_refused(server: BedrockServer) -> None:
    url = f"{server.url}/model/{MODEL}/converse"
    body = {"messages": [text("user", "hi")]}
    unsigned = httpx.post(url, json=body)
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException:")
    assert unsigned.json() == {"message": "Missing Authentication Token"}
    bearer = httpx.post(url, json=body, headers={"Authorization": "Bearer some-api-key"})
    assert bearer.headers["x-amzn-errortype"].startswith("IncompleteSignatureException:")
    code, message = refusal(client(server, "us-east-1").converse, modelId=MODEL, messages=body["messages"])
    assert code == "InvalidSignatureException" and "not 'us-east-1'" in message


@pytest.mark.parametrize(
    ("messages", "extra", "message"),
    [
        ([text("assistant", "hi")], {}, "A conversation must start with a user message."),
        ([text("user", "a"), text("user", "b")], {}, "must alternate between user and assistant roles"),
        (
            [text("user", " ")],
            {},
            "The text field in the ContentBlock object at messages.0.content.0 is blank",
        ),
        (
            [{"role": "user", "content": []}],
            {},
            "The content field in the Message object at messages.0 is empty",
        ),
        (
            [
                text("user", "time"),
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t1", "name": "clock", "input": {}}}],
                },
                text("user", "what was it?"),
            ],
            {"toolConfig": TOOLS},
            "Expected toolResult blocks at messages.2.content for the following Ids: t1",
        ),
        (
            [
                text("user", "time"),
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t1", "name": "clock", "input": {}}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "noon"}]}},
                        {"toolResult": {"toolUseId": "t2", "content": [{"text": "noon"}]}},
                    ],
                },
            ],
            {"toolConfig": TOOLS},
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks",
        ),
        (
            [
                text("user", "time"),
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t1", "name": "clock", "input": {}}}],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "noon"}]}}],
                },
            ],
            {},
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ),
        (
            [text("user", "hi")],
            {"inferenceConfig": {"maxTokens": 9000}},
            "outside the model's range of 1 to 8192",
        ),
        (
            [text("user", "hi")],
            {"guardrailConfig": {"guardrailIdentifier": "nope", "guardrailVersion": "1"}},
            "The guardrail identifier or version provided in the request does not exist.",
        ),
    ],
    ids=[
        "assistant-first",
        "same-role-twice",
        "blank-text",
        "empty-content",
        "unanswered-tool-use",
        "extra-tool-result",
        "tool-blocks-without-tool-config",
        "max-tokens",
        "unknown-guardrail",
    ],
)
def test_malformed_conversations_are_validation_errors(
    server: BedrockServer, messages: list[dict[str, Any]], extra: dict[str, Any], message: str
) -> None:
    code, said = refusal(client(server).converse, modelId=MODEL, messages=messages, **extra)
    assert code == "ValidationException" and message in said


@pytest.mark.parametrize(
    ("body", "model", "message"),
    [
        (
            {"inputText": "hi", "dimensions": 384},
            "amazon.titan-embed-text-v2:0",
            "384 is not a valid enum value",
        ),
        ({"inputText": "hi", "texts": ["hi"]}, "amazon.titan-embed-text-v2:0", "extraneous key [texts]"),
        ({"inputText": ""}, "amazon.titan-embed-text-v2:0", "expected minLength: 1"),
        (
            {"inputText": "hi"},
            "cohere.embed-english-v3",
            "serves InvokeModel for amazon.titan-embed-text-v2:0",
        ),
    ],
)
def test_bad_titan_requests_are_validation_errors(
    server: BedrockServer, body: dict[str, Any], model: str, message: str
) -> None:
    code, said = refusal(client(server).invoke_model, modelId=model, body=json.dumps(body))
    assert code == "ValidationException" and message in said


def test_titan_answers_with_the_requested_dimensions(server: BedrockServer) -> None:
    response = client(server).invoke_model(
        modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "two words"})
    )
    body = json.loads(response["body"].read())
    assert len(body["embedding"]) == 1024 and body["embeddingsByType"]["float"] == body["embedding"]
    assert body["inputTextTokenCount"] == 2
