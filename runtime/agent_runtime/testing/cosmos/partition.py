"""Effective partition keys, hashed as the service hashes them (MurmurHash3 x64-128 over the SDK's value
encoding): hierarchical-key prefix queries arrive as ranges of these."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from agent_runtime.testing.cosmos.base import UNDEFINED

#
# The SDK routes a query for a prefix of a hierarchical key by effective partition key (EPK) range, not by
# key values: it sends x-ms-start-epk and x-ms-end-epk. A V2 EPK is, per key component, the MurmurHash3
# x64-128 (seed 0) of the component's binary encoding, big-endian, with the top two bits cleared, in hex;
# a prefix's range is [its EPK, its EPK + "FF").

_MASK64 = (1 << 64) - 1
_C1, _C2 = 0x87C37B91114253D5, 0x4CF5AD432745937F


def _rotate(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK64


def _mix(value: int) -> int:
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & _MASK64
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & _MASK64
    return value ^ (value >> 33)


def _scramble(block: bytes, first: int, second: int, bits: int) -> int:
    return (_rotate((int.from_bytes(block, "little") * first) & _MASK64, bits) * second) & _MASK64


def _murmurhash3_128(data: bytes) -> tuple[int, int]:
    """MurmurHash3 x64-128 with seed 0, as its two 64-bit halves ``(h1, h2)``."""
    h1 = h2 = 0
    whole = len(data) - len(data) % 16
    for start in range(0, whole, 16):
        h1 ^= _scramble(data[start : start + 8], _C1, _C2, 31)
        h1 = ((_rotate(h1, 27) + h2) * 5 + 0x52DCE729) & _MASK64
        h2 ^= _scramble(data[start + 8 : start + 16], _C2, _C1, 33)
        h2 = ((_rotate(h2, 31) + h1) * 5 + 0x38495AB5) & _MASK64
    h2 ^= _scramble(data[whole + 8 :], _C2, _C1, 33)
    h1 ^= _scramble(data[whole : whole + 8], _C1, _C2, 31)
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _MASK64
    h2 = (h2 + h1) & _MASK64
    h1, h2 = _mix(h1), _mix(h2)
    h1 = (h1 + h2) & _MASK64
    return h1, (h2 + h1) & _MASK64


def _component_bytes(value: Any) -> bytes:
    """A partition key value's binary encoding for hashing (the service's type markers); values were
    checked by :func:`_is_key_value` when written."""
    if isinstance(value, bool):
        return b"\x03" if value else b"\x02"
    if value is None:
        return b"\x01"
    if value == UNDEFINED:
        return b"\x00"
    if isinstance(value, int | float):
        return b"\x05" + struct.pack("<d", float(value))
    return b"\x08" + str(value).encode() + b"\xff"


def effective_partition_key(values: Sequence[Any]) -> str:
    """The V2 effective partition key of a (possibly partial) list of partition key values."""
    parts = []
    for value in values:
        h1, h2 = _murmurhash3_128(_component_bytes(value))
        digest = bytearray(h2.to_bytes(8, "big") + h1.to_bytes(8, "big"))
        digest[0] &= 0x3F
        parts.append(digest.hex().upper())
    return "".join(parts)
