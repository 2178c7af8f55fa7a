"""The protobuf wire format's primitives, free of any kos type: varints, length-delimited
fields, splitting a message into its fields, and ``RawMessage`` (already-encoded bytes that
grpclib passes through untouched).

Kept apart from ``kos.apis.wire`` (the COSI resource codec, which pulls in the resource model
and YAML) so that what must start fast - machined's first API answer, kosctl - can speak
protobuf without them (issue 17). ``kos.apis.wire`` re-exports every name here.
"""

from __future__ import annotations

from typing import Any


class WireError(ValueError):
    """Malformed protobuf input."""


class RawMessage:
    """Already-encoded protobuf bytes, passed through grpclib's codec untouched."""

    __slots__ = ("data",)

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> RawMessage:
        return cls(data)


# -- encoding -----------------------------------------------------------------------------


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


SMALL = [bytes((i,)) for i in range(128)]
"""The one-byte varints 0-127."""


def length_delimited(tag: bytes, data: bytes) -> bytes:
    n = len(data)
    return tag + (SMALL[n] if n < 0x80 else varint(n)) + data


def string_field(tag: bytes, s: str) -> bytes:
    """A string field (proto3: nothing when empty)."""
    if not s:
        return b""
    return length_delimited(tag, s.encode())


# -- decoding -----------------------------------------------------------------------------


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Split a message into (number, wire type, value): int for varints, bytes otherwise."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    n = len(data)
    try:
        while pos < n:
            tag, pos = read_varint(data, pos)
            number, wire = tag >> 3, tag & 7
            if number == 0:
                raise WireError("field number 0")
            if wire == 0:
                value, pos = read_varint(data, pos)
                out.append((number, wire, value))
            elif wire == 2:
                length, pos = read_varint(data, pos)
                end = pos + length
                if end > n:
                    raise WireError("truncated length-delimited field")
                out.append((number, wire, data[pos:end]))
                pos = end
            elif wire == 1:
                if pos + 8 > n:
                    raise WireError("truncated fixed64")
                out.append((number, wire, data[pos : pos + 8]))
                pos += 8
            elif wire == 5:
                if pos + 4 > n:
                    raise WireError("truncated fixed32")
                out.append((number, wire, data[pos : pos + 4]))
                pos += 4
            else:
                raise WireError(f"unsupported wire type {wire}")
    except IndexError:
        raise WireError("truncated message") from None
    return out
