"""The binary framing of AWS event streams (``application/vnd.amazon.eventstream``), for test servers.

Each message is a prelude (total length, headers length, both big-endian uint32, and the CRC32 of those
eight bytes), the headers, the payload, and the CRC32 of everything before it. A header is its name
(uint8 length, UTF-8), a type byte and a value; only strings (type 7, uint16 length) are written here,
which is all Bedrock's streams carry. botocore's :class:`~botocore.eventstream.EventStreamBuffer` is the
reader these frames are checked against.
"""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers``."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = _PRELUDE.size + _CRC.size + len(encoded) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(encoded))
    message = prelude + _CRC.pack(binascii.crc32(prelude)) + encoded + payload
    return message + _CRC.pack(binascii.crc32(message))


def encode_event(event_type: str, body: dict[str, Any]) -> bytes:
    """An event of a JSON event stream (``messageStart``, ``contentBlockDelta``, ...)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, _json(body))


def encode_exception(exception_type: str, message: str) -> bytes:
    """A modeled exception in the stream (``throttlingException``, ...), as a service sends it mid-stream."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, _json({"message": message}))


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    )


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
