"""A model endpoint whose every answer a test writes itself, byte for byte: for answers the scripted model
never gives (usage that is missing or nonsense, a stream that stops short, fields of the wrong type).

``answer(body)`` returns the answer to one request: a JSON object (a completion, sent whole; with an HTTP
status first, ``(401, {...})``, an error) or, for a streamed request, a list of server-sent event payloads
(objects, or raw strings such as ``[DONE]``, each sent as one event's ``data``; or bytes, sent as they are:
a keep-alive comment, a line cut anywhere), sent one at a time ``pause`` seconds apart; a client that goes
away ends the stream. Any request path gets the same answers, so the answers may be any JSON API's
(OpenAI's chat completions, Anthropic's messages).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

Answer = dict[str, Any] | tuple[int, dict[str, Any]] | list[dict[str, Any] | str | bytes]


def chunk(content: Any = None, finish: Any = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a text delta (and a finish reason), plus any ``extra`` fields;
    ``content`` and ``finish`` may be any JSON, to send a wrong type."""
    delta = {"content": content} if content is not None else {}
    return {
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def tool_chunk(arguments: Any, call_id: Any = None, name: Any = None) -> dict[str, Any]:
    """A chunk carrying a piece of the first tool call: its ``arguments``, and its id and name when given
    (the first piece of a call has them); each may be any JSON, to send a wrong type."""
    function: dict[str, Any] = {"arguments": arguments}
    call: dict[str, Any] = {"index": 0, "function": function}
    if call_id is not None:
        call |= {"id": call_id, "type": "function"}
    if name is not None:
        function["name"] = name
    return {
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}],
    }


def usage_chunk(**usage: Any) -> dict[str, Any]:
    """The last chunk of a stream asked for its usage: no choices, the usage."""
    return {"object": "chat.completion.chunk", "model": "m", "choices": [], "usage": usage}


def completion(content: str, **usage: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }


class RawModel:
    """A model endpoint on loopback, in a thread of its own, answering with ``answer``."""

    def __init__(self, answer: Callable[[dict[str, Any]], Answer], pause: float = 0.0) -> None:
        self._answer, self._pause = answer, pause
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self._port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()
        # Open connections end now, on a running loop: collected later, they would close on a closed one.
        connections = asyncio.all_tasks(self._loop)
        for connection in connections:
            connection.cancel()
        self._loop.run_until_complete(asyncio.gather(*connections, return_exceptions=True))
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                length = (
                    int(head.split("content-length:")[1].split("\r\n")[0]) if "content-length:" in head else 0
                )
                answer = self._answer(json.loads(await reader.readexactly(length)))
                if not isinstance(answer, list):
                    status, whole = answer if isinstance(answer, tuple) else (200, answer)
                    data = json.dumps(whole).encode()
                    head_out = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
                    writer.write(head_out.encode() + b"\r\n\r\n" + data)
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                for payload in answer:
                    if isinstance(payload, bytes):
                        event = payload
                    else:
                        text = payload if isinstance(payload, str) else json.dumps(payload)
                        event = f"data: {text}\n\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    await asyncio.sleep(self._pause)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
