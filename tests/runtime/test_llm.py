"""The LLM layer sends what the openai SDK sent, to each provider in each auth mode, and records usage."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from raw_model import Answer, RawModel, chunk, tool_chunk
from tls_helpers import tls_files

from agent_runtime.errors import ConfigurationError, ModelError
from agent_runtime.llm import (
    LLM,
    MAX_EVENT_BYTES,
    PROGRESS,
    Completion,
    Progress,
    TextDelta,
    ToolCall,
    build_endpoint,
    server_sent_events,
)
from agent_runtime.settings import Settings
from agent_runtime.testing import Faults, ScriptedModelServer


class FakeCredential:
    """Stands in for ManagedIdentityCredential: records how it was built and which scopes were asked."""

    built_with: ClassVar[dict[str, Any]] = {}
    scopes: ClassVar[list[tuple[str, ...]]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeCredential.built_with = kwargs

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        FakeCredential.scopes.append(scopes)
        return type("Token", (), {"token": "entra-token", "expires_on": 2**31})()

    async def close(self) -> None:
        pass


def test_openai_compatible_endpoints_get_bearer_keys_and_plain_paths() -> None:
    endpoint, credential = build_endpoint(
        Settings(llm_endpoint="http://127.0.0.1:1/v1/", llm_api_key="sk-local")
    )
    assert credential is None
    assert endpoint.url("chat/completions", "gpt-4o") == "http://127.0.0.1:1/v1/chat/completions"
    assert asyncio.run(endpoint.auth_headers()) == {"Authorization": "Bearer sk-local"}
    keyless, _ = build_endpoint(
        Settings(llm_endpoint="http://127.0.0.1:1/v1", llm_auth="none", llm_api_key="k")
    )
    assert asyncio.run(keyless.auth_headers()) == {}, "llm_auth=none sends no credentials"


def test_azure_endpoints_use_deployment_paths_the_api_version_and_an_api_key_header() -> None:
    endpoint, _ = build_endpoint(
        Settings(
            llm_provider="azure_openai",
            llm_endpoint="https://acct.openai.azure.com/",
            llm_api_key="azure-key",
            llm_api_version="2024-10-21",
        )
    )
    assert endpoint.url("chat/completions", "gpt-4o") == (
        "https://acct.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    )
    assert endpoint.url("embeddings", "emb") == (
        "https://acct.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
    )
    assert asyncio.run(endpoint.auth_headers()) == {"api-key": "azure-key"}


def test_azure_with_entra_uses_the_managed_identity_and_no_key(
    model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("azure.identity.aio.ManagedIdentityCredential", FakeCredential)
    settings = Settings(
        llm_provider="azure_openai",
        llm_auth="entra",
        llm_endpoint=model.url,
        identity_client_id="client-123",
        llm_api_key="must-not-be-used",
        llm_token_scope="api://gateway-audience/.default",
    )
    endpoint, credential = build_endpoint(settings)
    assert isinstance(credential, FakeCredential)
    assert FakeCredential.built_with == {"client_id": "client-123"}

    async def chat() -> Completion:
        llm = LLM(endpoint, credential)
        try:
            return await llm.complete("my-deployment", [{"role": "user", "content": "via azure"}])
        finally:
            await llm.close()

    assert asyncio.run(chat()).content == "via azure"
    # The token is for the configured audience (here an API gateway's), Azure OpenAI's by default.
    assert FakeCredential.scopes[-1] == ("api://gateway-audience/.default",)
    assert Settings().llm_token_scope == "https://cognitiveservices.azure.com/.default"
    [headers] = model.headers
    assert headers["authorization"] == "Bearer entra-token" and "api-key" not in headers
    assert model.requests[0]["model"] == "my-deployment"


def test_the_request_is_what_the_openai_sdk_sends(model: ScriptedModelServer) -> None:
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none", max_output_tokens=77))
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

    async def chat() -> None:
        try:
            await llm.complete("m", [{"role": "user", "content": "hi"}])
            await llm.complete("m", [{"role": "user", "content": "hi"}], [tool])
        finally:
            await llm.close()

    asyncio.run(chat())
    plain, with_tools = model.requests
    assert plain == {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "m",
        "max_completion_tokens": 77,
    }
    assert "tools" not in plain, "an empty tool list is omitted: several servers reject it"
    assert with_tools["tools"] == [tool]


def test_status_errors_say_what_the_endpoint_said_and_whether_to_retry(model: ScriptedModelServer) -> None:
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def chat() -> None:
        try:
            await llm.complete("m", [{"role": "user", "content": "hi"}])
        finally:
            await llm.close()

    model.faults["*"] = Faults(rate_429=1.0, retry_after=2.5)
    with pytest.raises(ModelError) as raised:
        asyncio.run(chat())
    assert raised.value.message == "the model endpoint answered HTTP 429: rate limited (injected)"
    assert raised.value.retryable and raised.value.retry_after == 2.5
    model.faults["*"] = Faults(rate_malformed=1.0)
    with pytest.raises(ModelError, match="malformed response") as raised:
        asyncio.run(chat())
    assert raised.value.retryable


def test_an_unreachable_endpoint_is_a_retryable_model_error() -> None:
    llm = LLM.from_settings(Settings(llm_endpoint="http://127.0.0.1:9/v1", llm_auth="none"))

    async def chat() -> None:
        try:
            await llm.complete("m", [{"role": "user", "content": "hi"}])
        finally:
            await llm.close()

    with pytest.raises(ModelError, match="unreachable") as raised:
        asyncio.run(chat())
    assert raised.value.retryable


def test_stream_assembles_text_and_usage_and_logs_one_record_per_call(
    model: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentstage.usage")
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def stream() -> list[TextDelta | Completion]:
        try:
            return [event async for event in llm.stream("m", [{"role": "user", "content": "story"}])]
        finally:
            await llm.close()

    *deltas, completion = asyncio.run(stream())
    assert isinstance(completion, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == completion.content
    assert completion.usage.total_tokens > 0 and completion.finish_reason == "stop"
    [record] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentstage.usage"]
    assert record["operation"] == "chat" and record["total_tokens"] == completion.usage.total_tokens


def test_embeddings_come_back_in_order(model: ScriptedModelServer) -> None:
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def embed() -> list[list[float]]:
        try:
            return await llm.embed(["one", "two", "one"], model="e", dimensions=16)
        finally:
            await llm.close()

    first, second, third = asyncio.run(embed())
    assert len(first) == 16 and first == pytest.approx(third) and first != pytest.approx(second)


def test_a_stream_without_events_is_a_malformed_answer(model: ScriptedModelServer) -> None:
    """An answer that is not server-sent events (here truncated JSON) must not pass as an empty reply."""
    model.faults["*"] = Faults(rate_malformed=1.0)
    llm = LLM.from_settings(Settings(llm_endpoint=model.base_url, llm_auth="none"))

    async def stream() -> list[TextDelta | Completion]:
        try:
            return [event async for event in llm.stream("m", [{"role": "user", "content": "story"}])]
        finally:
            await llm.close()

    with pytest.raises(ModelError, match="malformed response") as raised:
        asyncio.run(stream())
    assert raised.value.retryable


def _answered(answer: Answer, streamed: bool) -> list[TextDelta | Progress | Completion]:
    """The events of one call (a plain call's completion alone) to an endpoint answering ``answer``."""
    raw = RawModel(lambda body: answer)
    llm = LLM.from_settings(Settings(llm_endpoint=raw.url, llm_auth="none"))
    messages = [{"role": "user", "content": "hi"}]

    async def call() -> list[TextDelta | Progress | Completion]:
        try:
            if not streamed:
                return [await llm.complete("m", messages)]
            return [event async for event in llm.stream("m", messages)]
        finally:
            await llm.close()

    try:
        return asyncio.run(call())
    finally:
        raw.close()


def _plain(message: dict[str, Any], finish: Any = "stop") -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]}


ARGUMENTS_OBJECT = {"expression": "1+1"}
WRONG_TYPES: dict[str, tuple[Answer, bool]] = {
    "streamed text that is a number": ([chunk("Hello, "), chunk(123), "[DONE]"], True),
    "streamed text that is a list": ([chunk(["Hello"]), "[DONE]"], True),
    "streamed arguments that are an object": (
        [tool_chunk(ARGUMENTS_OBJECT, "c1", "calculator"), chunk(finish="tool_calls"), "[DONE]"],
        True,
    ),
    "a streamed call id that is a number": (
        [tool_chunk("{}", 7, "calculator"), chunk(finish="tool_calls"), "[DONE]"],
        True,
    ),
    "a streamed finish reason that is a number": ([chunk("Hi"), chunk(finish=5), "[DONE]"], True),
    "content that is a number": (_plain({"content": 123}), False),
    "arguments that are an object": (
        _plain(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "calc", "arguments": ARGUMENTS_OBJECT},
                    }
                ],
            },
            finish="tool_calls",
        ),
        False,
    ),
    "a finish reason that is a number": (_plain({"content": "Hi"}, finish=5), False),
}


@pytest.mark.parametrize(("answer", "streamed"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_field_of_the_wrong_type_is_a_malformed_answer(answer: Answer, streamed: bool) -> None:
    """Passed on, a number where text belongs failed far from the parser (the output guard, the trace's
    models, the response): a 500, or a stream cut without an error event."""
    with pytest.raises(ModelError, match="malformed response") as raised:
        _answered(answer, streamed)
    assert raised.value.retryable


def test_tool_call_pieces_are_progress_and_keepalives_and_empty_deltas_are_nothing() -> None:
    """What the gateway's per-event timeout counts as progress: a piece of the answer, text or tool call."""
    reasoning = {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}, "finish_reason": None}]}
    answer: Answer = [
        tool_chunk("", "c1", "calculator"),
        b": keep-alive\n\n",
        chunk(),
        reasoning,
        tool_chunk('{"expression": '),
        tool_chunk('"1+1"}'),
        chunk(finish="tool_calls"),
        "[DONE]",
    ]
    *pieces, completion = _answered(answer, streamed=True)
    assert pieces == [PROGRESS] * 3
    assert isinstance(completion, Completion) and completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("c1", "calculator", '{"expression": "1+1"}'),)


class _Body:
    """A response body arriving in ``pieces``, counting those read."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self.read = 0

    async def iter_any(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            self.read += 1
            yield piece


def _events(body: _Body) -> list[tuple[str, Any]]:
    async def read() -> list[tuple[str, Any]]:
        return [event async for event in server_sent_events(body)]  # type: ignore[arg-type]

    return asyncio.run(read())


def test_a_long_line_in_small_pieces_is_read_in_time_linear_in_its_length() -> None:
    """Adding each piece to the line held so far and splitting it all again took seconds of CPU here."""
    text = "a" * (MAX_EVENT_BYTES - 1024)
    line = f"data: {json.dumps(chunk(text))}\n\n".encode()
    started = time.thread_time()
    [(_, event)] = _events(_Body(line[i : i + 1024] for i in range(0, len(line), 1024)))
    assert time.thread_time() - started < 0.5
    assert event["choices"][0]["delta"]["content"] == text


@pytest.mark.parametrize(
    "piece",
    [b"a" * 65536, b"data: " + b"a" * 65530 + b"\n"],
    ids=["one line without an end", "one event of many data lines"],
)
def test_an_event_past_the_bound_is_refused_as_it_arrives(piece: bytes) -> None:
    """Not buffered whole first: a line (or an event) without its end is as much memory as the endpoint
    sends."""
    body = _Body(itertools.repeat(piece, 4 * MAX_EVENT_BYTES // len(piece)))
    with pytest.raises(ModelError, match="malformed response"):
        _events(body)
    assert (body.read - 2) * len(piece) <= MAX_EVENT_BYTES, "read no further than the bound and a piece"


def _completion(extra_headers: str = "") -> bytes:
    """An HTTP/1.1 response carrying a chat completion that answers "ok"."""
    body = json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
    ).encode()
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra_headers
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _head(raw: bytes) -> tuple[str, dict[str, str]]:
    """An HTTP request's first line and its headers (names in lower case)."""
    request_line, *lines = raw.decode().removesuffix("\r\n\r\n").split("\r\n")
    return request_line, {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
    }


class _HangingUpServer:
    """An HTTP/1.1 server on loopback that answers ``answered`` requests per connection and then hangs up
    on the next one without a response: the race of a pooled keep-alive connection the server closes."""

    def __init__(self, answered: int) -> None:
        self.answered = answered
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed an idle connection
                return
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.requests += 1
            if served == self.answered:
                writer.close()
                return
            served += 1
            writer.write(_completion())
            await writer.drain()


def _complete_twice(server: _HangingUpServer) -> list[str]:
    async def run() -> list[str]:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        llm = LLM.from_settings(Settings(llm_endpoint=f"http://127.0.0.1:{port}/v1", llm_auth="none"))
        try:
            return [
                (await llm.complete("m", [{"role": "user", "content": "hi"}])).content or "" for _ in range(2)
            ]
        finally:
            await llm.close()
            listener.close()

    return asyncio.run(run())


def test_a_pooled_connection_closed_under_a_request_is_retried_once_on_a_new_one() -> None:
    server = _HangingUpServer(answered=1)
    assert _complete_twice(server) == ["ok", "ok"]
    assert (server.connections, server.requests) == (2, 3), "one hang-up, one resend on a new connection"


def test_a_server_that_keeps_hanging_up_is_an_unreachable_endpoint_after_one_resend() -> None:
    server = _HangingUpServer(answered=0)
    with pytest.raises(ModelError, match="unreachable") as raised:
        _complete_twice(server)
    assert raised.value.retryable, "the retry policy decides what happens next"
    assert server.requests == 2, "resent once, not in a loop"


class _ForwardProxy:
    """An HTTP forward proxy on loopback, as far as a client sees one: it takes absolute-form requests and
    answers them (with a completion), recording each request line and its ``Proxy-Authorization``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            request_line, headers = _head(head)
            await reader.readexactly(int(headers["content-length"]))
            self.seen.append((request_line, headers.get("proxy-authorization")))
            writer.write(_completion())
            await writer.drain()


PROXY_CREDENTIALS = "Basic " + base64.b64encode(b"agent:s3cret").decode()


def _complete_through(
    proxy: _ForwardProxy,
    endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str | None = None,
    **settings: Any,
) -> str:
    """One completion from ``endpoint`` (``settings`` else no credentials) with the environment naming
    ``proxy`` for both schemes, credentials in its URL, and ``no_proxy`` as ``NO_PROXY``."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    if no_proxy is not None:
        monkeypatch.setenv("NO_PROXY", no_proxy)

    async def run() -> str:
        listener = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        for name in ("HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, f"http://agent:s3cret@127.0.0.1:{port}")
        llm = LLM.from_settings(Settings(llm_endpoint=endpoint, **(settings or {"llm_auth": "none"})))
        try:
            return (await llm.complete("m", [{"role": "user", "content": "hi"}])).content or ""
        finally:
            await llm.close()
            listener.close()

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # nothing on a call's path is on its way out
        return asyncio.run(run())


def test_the_proxy_the_environment_names_carries_the_calls_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the SDK's httpx client did: ``HTTP_PROXY`` with credentials in its URL, sent as
    ``Proxy-Authorization``; the endpoint's host (which does not resolve here) is the proxy's to reach."""
    proxy = _ForwardProxy()
    assert _complete_through(proxy, "http://models.example.invalid/v1", monkeypatch) == "ok"
    [(request_line, authorization)] = proxy.seen
    assert request_line == "POST http://models.example.invalid/v1/chat/completions HTTP/1.1"
    assert authorization == PROXY_CREDENTIALS


def test_a_host_no_proxy_names_is_reached_directly(
    model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = _ForwardProxy()
    assert _complete_through(proxy, model.base_url, monkeypatch, no_proxy="127.0.0.1"), "the model answered"
    assert proxy.seen == [] and len(model.requests) == 1


class _TunnellingProxy(_ForwardProxy):
    """A forward proxy for HTTPS: it takes the ``CONNECT``, then plays the endpoint inside the tunnel (TLS
    with a certificate the test's CA signed), recording what reached each side."""

    def __init__(self, endpoint_tls: ssl.SSLContext) -> None:
        super().__init__()
        self.endpoint_tls = endpoint_tls
        self.inside: list[dict[str, str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line, headers = _head(await reader.readuntil(b"\r\n\r\n"))
        self.seen.append((request_line, headers.get("proxy-authorization")))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(self.endpoint_tls)
        _, inner = _head(await reader.readuntil(b"\r\n\r\n"))
        await reader.readexactly(int(inner["content-length"]))
        self.inside.append(inner)
        writer.write(_completion("Connection: close\r\n"))
        await writer.drain()
        writer.close()


def test_through_an_https_tunnel_the_proxys_credentials_go_to_the_proxy_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``HTTPS_PROXY``: the credentials on the ``CONNECT``, never on the request inside the tunnel, which the
    endpoint reads; the endpoint's certificate is verified against ``SSL_CERT_FILE``."""
    host = "models.example.invalid"
    ca_file, endpoint_tls = tls_files(tmp_path, host)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    proxy = _TunnellingProxy(endpoint_tls)
    endpoint = f"https://{host}/v1"
    assert _complete_through(proxy, endpoint, monkeypatch, llm_api_key="sk-endpoint") == "ok"
    assert proxy.seen == [(f"CONNECT {host}:443 HTTP/1.1", PROXY_CREDENTIALS)]
    [inside] = proxy.inside
    assert "proxy-authorization" not in inside and inside["authorization"] == "Bearer sk-endpoint"


def test_a_proxy_variable_that_is_not_a_url_stops_the_start_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not a failure of every call: the runtime does not start, and says which settings to correct."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://[proxy.corp:3128")
    with pytest.raises(ConfigurationError, match="not a valid URL.*HTTPS_PROXY / HTTP_PROXY") as raised:
        LLM.from_settings(Settings(llm_endpoint="https://models.example.invalid/v1", llm_api_key="sk-x"))
    assert "[proxy.corp" not in raised.value.message, "a proxy URL may hold credentials: it is not echoed"
