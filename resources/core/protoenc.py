"""A small, fast protobuf (proto3) codec for spec dataclasses.

A spec declares the protobuf number of each field in the dataclass field metadata
(``spec_field(1)``); this module builds, once per class, a plan of (number, name, kind)
and encodes/decodes with it. It covers what specs use: integers (varint, negative values
as 64-bit two's complement like int64), bool, str, bytes, float (double), IntEnum, nested
spec dataclasses, ``list[...]`` (scalars packed) and ``dict[str, ...]`` (maps).

Encoding omits proto3 defaults (0, "", False, empty), so an all-default spec is ``b""``.
Unknown fields are skipped on decode, so older and newer kos versions interoperate.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import types
import typing
from collections.abc import Callable
from typing import Any

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# Kinds of scalar.
_K_INT, _K_BOOL, _K_STR, _K_BYTES, _K_FLOAT, _K_ENUM, _K_MSG = range(7)


class ProtoDecodeError(ValueError):
    pass


def _encode_varint(value: int, out: bytearray) -> None:
    if value < 0:
        value += 1 << 64
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _decode_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtoDecodeError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtoDecodeError("varint too long")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclasses.dataclass(slots=True)
class _FieldPlan:
    number: int
    name: str
    kind: int
    repeated: bool = False
    is_map: bool = False
    key_kind: int = _K_STR
    cls: Any = None  # enum class or nested dataclass
    optional: bool = False


_PLANS: dict[type, list[_FieldPlan]] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    """Resolved annotations of a spec dataclass (cached)."""
    hints = _HINTS.get(cls)
    if hints is None:
        from kos.resources.core.definition import ResourceDefinition

        hints = typing.get_type_hints(cls, localns={"ResourceDefinition": ResourceDefinition})
        _HINTS[cls] = hints
    return hints


def _scalar_kind(tp: Any) -> tuple[int, Any]:
    if tp is bool:
        return _K_BOOL, None
    if tp is int:
        return _K_INT, None
    if tp is str:
        return _K_STR, None
    if tp is bytes:
        return _K_BYTES, None
    if tp is float:
        return _K_FLOAT, None
    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        return _K_ENUM, tp
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _K_MSG, tp
    raise TypeError(f"unsupported protobuf field type {tp!r}")


def plan_for(cls: type) -> list[_FieldPlan]:
    plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    hints = field_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        number = f.metadata.get("proto")
        if number is None:
            continue
        tp = hints[f.name]
        optional = False
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"{cls.__name__}.{f.name}: unions are not encodable")
            tp = args[0]
            optional = True
            origin = typing.get_origin(tp)
        if origin in (list, tuple):
            inner = typing.get_args(tp)[0]
            kind, sub = _scalar_kind(inner)
            plan.append(_FieldPlan(number, f.name, kind, repeated=True, cls=sub))
        elif origin is dict:
            kt, vt = typing.get_args(tp)
            key_kind, _ = _scalar_kind(kt)
            kind, sub = _scalar_kind(vt)
            plan.append(_FieldPlan(number, f.name, kind, is_map=True, key_kind=key_kind, cls=sub))
        else:
            kind, sub = _scalar_kind(tp)
            plan.append(_FieldPlan(number, f.name, kind, cls=sub, optional=optional))
    plan.sort(key=lambda p: p.number)
    _PLANS[cls] = plan
    return plan


def _wire_type(kind: int) -> int:
    if kind in (_K_INT, _K_BOOL, _K_ENUM):
        return _VARINT
    if kind == _K_FLOAT:
        return _I64
    return _LEN


def _encode_scalar(kind: int, number: int, value: Any, out: bytearray, force: bool) -> None:
    if kind == _K_STR:
        if value or force:
            b = value.encode()
            _encode_varint((number << 3) | _LEN, out)
            _encode_varint(len(b), out)
            out += b
    elif kind in (_K_INT, _K_ENUM):
        if value or force:
            _encode_varint((number << 3) | _VARINT, out)
            _encode_varint(int(value), out)
    elif kind == _K_BOOL:
        if value or force:
            _encode_varint((number << 3) | _VARINT, out)
            out.append(1 if value else 0)
    elif kind == _K_BYTES:
        if value or force:
            _encode_varint((number << 3) | _LEN, out)
            _encode_varint(len(value), out)
            out += value
    elif kind == _K_FLOAT:
        if value or force:
            _encode_varint((number << 3) | _I64, out)
            out += struct.pack("<d", value)
    else:  # message
        if value is None:
            return
        b = encode(value)
        _encode_varint((number << 3) | _LEN, out)
        _encode_varint(len(b), out)
        out += b


def encode(obj: Any) -> bytes:
    """Encode a spec dataclass instance to protobuf bytes."""
    out = bytearray()
    for p in plan_for(type(obj)):
        value = getattr(obj, p.name)
        if p.is_map:
            for k, v in (value or {}).items():
                entry = bytearray()
                _encode_scalar(p.key_kind, 1, k, entry, True)
                _encode_scalar(p.kind, 2, v, entry, True)
                _encode_varint((p.number << 3) | _LEN, out)
                _encode_varint(len(entry), out)
                out += entry
        elif p.repeated:
            if not value:
                continue
            if p.kind in (_K_INT, _K_BOOL, _K_ENUM):
                packed = bytearray()
                for v in value:
                    _encode_varint(int(v), packed)
                _encode_varint((p.number << 3) | _LEN, out)
                _encode_varint(len(packed), out)
                out += packed
            elif p.kind == _K_FLOAT:
                packed = bytearray(struct.pack(f"<{len(value)}d", *value))
                _encode_varint((p.number << 3) | _LEN, out)
                _encode_varint(len(packed), out)
                out += packed
            else:
                for v in value:
                    _encode_scalar(p.kind, p.number, v, out, True)
        else:
            if p.optional and value is None:
                continue
            _encode_scalar(p.kind, p.number, value, out, p.optional)
    return bytes(out)


def _read_field(data: memoryview, pos: int, wire: int) -> tuple[Any, int]:
    if wire == _VARINT:
        return _decode_varint(data, pos)
    if wire == _LEN:
        length, pos = _decode_varint(data, pos)
        end = pos + length
        if end > len(data):
            raise ProtoDecodeError("truncated length-delimited field")
        return data[pos:end], end
    if wire == _I64:
        if pos + 8 > len(data):
            raise ProtoDecodeError("truncated fixed64")
        return data[pos : pos + 8], pos + 8
    if wire == _I32:
        if pos + 4 > len(data):
            raise ProtoDecodeError("truncated fixed32")
        return data[pos : pos + 4], pos + 4
    raise ProtoDecodeError(f"unsupported wire type {wire}")


def _convert(kind: int, cls: Any, raw: Any, wire: int) -> Any:
    if kind == _K_STR:
        if wire != _LEN:
            raise ProtoDecodeError("string field with a non length-delimited wire type")
        return bytes(raw).decode()
    if kind == _K_BYTES:
        return bytes(raw)
    if kind == _K_INT:
        return _signed(raw)
    if kind == _K_BOOL:
        return bool(raw)
    if kind == _K_ENUM:
        try:
            return cls(raw)
        except ValueError:
            return raw
    if kind == _K_FLOAT:
        return struct.unpack("<d", bytes(raw))[0]
    return decode(cls, bytes(raw))


def decode(cls: type[Any], data: bytes) -> Any:
    """Decode protobuf bytes into a new instance of the spec dataclass ``cls``."""
    plans = {p.number: p for p in plan_for(cls)}
    values: dict[str, Any] = {}
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        tag, pos = _decode_varint(view, pos)
        number, wire = tag >> 3, tag & 7
        raw, pos = _read_field(view, pos, wire)
        p = plans.get(number)
        if p is None:
            continue
        if p.is_map:
            entry = memoryview(bytes(raw))
            epos = 0
            key: Any = "" if p.key_kind == _K_STR else 0
            val: Any = _default_of(p)
            while epos < len(entry):
                etag, epos = _decode_varint(entry, epos)
                eraw, epos = _read_field(entry, epos, etag & 7)
                if etag >> 3 == 1:
                    key = _convert(p.key_kind, None, eraw, etag & 7)
                elif etag >> 3 == 2:
                    val = _convert(p.kind, p.cls, eraw, etag & 7)
            values.setdefault(p.name, {})[key] = val
        elif p.repeated:
            lst = values.setdefault(p.name, [])
            if wire == _LEN and p.kind in (_K_INT, _K_BOOL, _K_ENUM):
                sub = raw
                spos = 0
                while spos < len(sub):
                    v, spos = _decode_varint(sub, spos)
                    lst.append(_convert(p.kind, p.cls, v, _VARINT))
            elif wire == _LEN and p.kind == _K_FLOAT:
                lst.extend(struct.unpack(f"<{len(raw) // 8}d", bytes(raw)))
            else:
                lst.append(_convert(p.kind, p.cls, raw, wire))
        else:
            if _wire_type(p.kind) != wire:
                raise ProtoDecodeError(f"field {p.name} (#{number}) has wire type {wire}")
            values[p.name] = _convert(p.kind, p.cls, raw, wire)
    return cls(**values)


def _default_of(p: _FieldPlan) -> Any:
    return {_K_STR: "", _K_BYTES: b"", _K_INT: 0, _K_BOOL: False, _K_FLOAT: 0.0}.get(
        p.kind, 0 if p.kind == _K_ENUM else None
    )


Encoder = Callable[[Any], bytes]
