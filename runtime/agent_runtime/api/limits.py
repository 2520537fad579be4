"""Request size limits: the body, enforced before anything is parsed, and the prompt's text.

A pure ASGI middleware (no per-request task or buffering): a declared ``Content-Length`` above the limit is
refused at once; a body without one (chunked) is counted as it is received and refused as soon as it
passes the limit, so an oversized request never reaches the JSON parser. A body with a ``Content-Encoding``
is refused too (415): nothing decodes it, so it would be parsed compressed (and counted at its compressed
size). Prompts are limited separately (:func:`check_prompt_size`), after parsing, by their characters of
text.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_runtime.api.errors import error_response
from agent_runtime.errors import PayloadTooLarge, PromptTooLarge, UnsupportedMediaType
from agent_runtime.memory.base import Message as ChatMessage

_MAX_LENGTH_DIGITS = 19
"""A ``Content-Length`` of more digits (than 2**63 has) is too large whatever the limit, and is not converted:
``int()`` refuses more than 4300 digits, which a host that hands the header over unparsed (Mangum) lets in."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = encoding = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length is None:
                    length = value
            elif name == b"content-encoding":
                encoding = value
        refusal = self._refusal(length, encoding)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        received = 0
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not refused:
                        refused = True
                        await error_response(413, PayloadTooLarge.code, self._message())(scope, receive, send)
                    # The app sees the client leave and stops reading; its own answer is dropped below.
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    def _refusal(self, length: bytes | None, encoding: bytes | None) -> Response | None:
        """The answer to a request its ``Content-Length`` or ``Content-Encoding`` header refuses, if any."""
        if length is not None and not length.isdigit():
            return error_response(400, "invalid_request", "Content-Length is not a number")
        if encoding is not None and encoding.strip().lower() != b"identity":
            return error_response(
                UnsupportedMediaType.status,
                UnsupportedMediaType.code,
                f"Content-Encoding {encoding.decode('latin-1')} is not supported: send the body uncompressed",
                "Content-Encoding",
            )
        if length is not None and (len(length) > _MAX_LENGTH_DIGITS or int(length) > self.max_bytes):
            return error_response(413, PayloadTooLarge.code, self._message())
        return None

    def _message(self) -> str:
        return f"the request body exceeds {self.max_bytes} bytes"


def check_prompt_size(messages: Sequence[ChatMessage], max_chars: int, field: str) -> None:
    """Refuse requests whose messages together exceed ``max_chars`` characters of text."""
    total = sum(len(message.get("content") or "") for message in messages)
    if total > max_chars:
        raise PromptTooLarge(f"the messages hold {total} characters; the limit is {max_chars}", field=field)
