"""Hand-written protobuf encoding/decoding of the hot ``cosi.resource`` messages.

The generated betterproto classes are correct but slow (about 10k messages/s to encode
here); watch streams and lists send Resource/Event/WatchResponse messages straight from
``kos.resources.core`` objects with the functions below instead, and the client decodes
them back into typed resources without building betterproto objects. Field numbers are
those of ``apis/proto/cosi/resource/{resource,state}.proto`` (cosi-semantics.md 1.6, 4);
``tests/apis/test_wire.py`` checks every function against the generated classes.

``RawMessage`` lets grpclib send/receive bytes that were encoded or will be decoded here; it and
the wire-format primitives live in ``kos.apis.protowire`` (no resource model, no YAML: what
machined's first API answer needs) and are re-exported here.
"""

from __future__ import annotations

import math
from typing import Any

from kos.apis.protowire import SMALL
from kos.apis.protowire import RawMessage as RawMessage
from kos.apis.protowire import WireError as WireError
from kos.apis.protowire import fields as fields
from kos.apis.protowire import length_delimited as length_delimited
from kos.apis.protowire import varint as varint
from kos.apis.yamlenc import spec_yaml_text
from kos.resources.core import (
    EMPTY_SPEC,
    REGISTRY,
    DynamicSpec,
    EmptySpec,
    Event,
    EventType,
    Metadata,
    Phase,
    Registry,
    Resource,
    parse_version,
)


def _str(tag: bytes, s: str) -> bytes:
    if not s:
        return b""
    return length_delimited(tag, s.encode())


def _timestamp(tag: bytes, ts: float) -> bytes:
    frac, whole = math.modf(ts)
    seconds = int(whole)
    nanos = round(frac * 1e9)
    if nanos < 0:
        seconds -= 1
        nanos += 1_000_000_000
    if nanos >= 1_000_000_000:
        seconds += 1
        nanos -= 1_000_000_000
    body = (b"\x08" + varint(seconds) if seconds else b"") + (b"\x10" + varint(nanos) if nanos else b"")
    return length_delimited(tag, body)


_PHASE = {Phase.RUNNING: b"\x32\x07running", Phase.TEARING_DOWN: b"\x32\x0btearingDown"}


def _map(tag: bytes, m: dict[str, str]) -> bytes:
    parts = []
    for k, v in m.items():
        parts.append(length_delimited(tag, _str(b"\x0a", k) + _str(b"\x12", v)))
    return b"".join(parts)


def encode_metadata(md: Metadata) -> bytes:
    v = md.version
    parts = [
        _str(b"\x0a", md.namespace),
        _str(b"\x12", md.type),
        _str(b"\x1a", md.id),
        length_delimited(b"\x22", b"undefined" if v is None else str(v).encode()),
        _str(b"\x2a", md.owner),
        _PHASE[md.phase],
        _timestamp(b"\x3a", md.created),
        _timestamp(b"\x42", md.updated),
    ]
    for f in md.finalizers:
        parts.append(length_delimited(b"\x4a", f.encode()))
    if md.labels:
        parts.append(_map(b"\x52", md.labels))
    if md.annotations:
        parts.append(_map(b"\x5a", md.annotations))
    return b"".join(parts)


def encode_spec(spec: Any, *, with_yaml: bool = True) -> bytes:
    """``cosi.resource.Spec``: the protobuf bytes and (unless disabled) the YAML text; a
    tombstone's spec is the empty ``Spec{}`` (as COSI sends it)."""
    if isinstance(spec, EmptySpec):
        return b""
    if isinstance(spec, DynamicSpec):
        proto, text = spec.proto, spec.yaml
    else:
        proto = spec.marshal_proto()
        text = spec_yaml_text(spec) if with_yaml else ""
    return (length_delimited(b"\x0a", proto) if proto else b"") + _str(b"\x12", text)


def encode_resource(r: Resource[Any], *, with_yaml: bool = True) -> bytes:
    """``cosi.resource.Resource`` of a kos resource."""
    return (length_delimited(b"\x0a", encode_metadata(r.metadata))
            + length_delimited(b"\x12", encode_spec(r.spec, with_yaml=with_yaml)))


def encode_event(ev: Event, *, with_yaml: bool = True) -> bytes:
    parts = []
    if ev.resource is not None:
        parts.append(length_delimited(b"\x0a", encode_resource(ev.resource, with_yaml=with_yaml)))
    if ev.type:
        parts.append(b"\x10" + SMALL[int(ev.type)])
    if ev.old is not None:
        parts.append(length_delimited(b"\x1a", encode_resource(ev.old, with_yaml=with_yaml)))
    if ev.error is not None:
        parts.append(length_delimited(b"\x22", ev.error.encode()))
    if ev.bookmark is not None:
        parts.append(length_delimited(b"\x2a", ev.bookmark))
    return b"".join(parts)


def encode_watch_response(events: list[Event], *, with_yaml: bool = True) -> bytes:
    """``cosi.resource.WatchResponse`` carrying ``events`` (empty list: the "established" message)."""
    return b"".join(length_delimited(b"\x0a", encode_event(ev, with_yaml=with_yaml)) for ev in events)


def encode_resource_response(r: Resource[Any] | None) -> bytes:
    """Get/List/Create/Update responses: ``{Resource resource = 1}``."""
    return b"" if r is None else length_delimited(b"\x0a", encode_resource(r))


# -- decoding -----------------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, bytes):
        raise WireError(f"{what}: expected a length-delimited string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise WireError(f"{what}: invalid UTF-8") from None


def _decode_timestamp(data: bytes) -> float:
    seconds = nanos = 0
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, int):
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 2 and isinstance(value, int):
            nanos = value
    return seconds + nanos / 1e9


def _decode_entry(data: bytes) -> tuple[str, str]:
    k = v = ""
    for number, _, value in fields(data):
        if number == 1:
            k = _text(value, "map key")
        elif number == 2:
            v = _text(value, "map value")
    return k, v


def decode_metadata(data: bytes) -> Metadata:
    ns = typ = id = owner = ""
    version: int | None = None
    phase = Phase.RUNNING
    created = updated = 0.0
    finalizers: list[str] = []
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for number, _, value in fields(data):
        if number == 1:
            ns = _text(value, "metadata.namespace")
        elif number == 2:
            typ = _text(value, "metadata.type")
        elif number == 3:
            id = _text(value, "metadata.id")
        elif number == 4:
            try:
                version = parse_version(_text(value, "metadata.version"))
            except ValueError as exc:
                raise WireError(f"metadata.version: {exc}") from None
        elif number == 5:
            owner = _text(value, "metadata.owner")
        elif number == 6:
            try:
                phase = Phase.parse(_text(value, "metadata.phase"))
            except ValueError as exc:
                raise WireError(f"metadata.phase: {exc}") from None
        elif number == 7 and isinstance(value, bytes):
            created = _decode_timestamp(value)
        elif number == 8 and isinstance(value, bytes):
            updated = _decode_timestamp(value)
        elif number == 9:
            finalizers.append(_text(value, "metadata.finalizers"))
        elif number == 10 and isinstance(value, bytes):
            k, v = _decode_entry(value)
            labels[k] = v
        elif number == 11 and isinstance(value, bytes):
            k, v = _decode_entry(value)
            annotations[k] = v
    return Metadata(
        ns,
        typ,
        id,
        version=version,
        owner=owner,
        phase=phase,
        finalizers=finalizers,
        labels=labels,
        annotations=annotations,
        created=created,
        updated=updated,
    )


def decode_spec_fields(data: bytes) -> tuple[bytes, str]:
    proto = b""
    text = ""
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            proto = value
        elif number == 2:
            text = _text(value, "spec.yaml_spec")
    return proto, text


def decode_resource(data: bytes, *, registry: Registry | None = REGISTRY) -> Resource[Any]:
    """A kos resource from ``cosi.resource.Resource`` bytes. The spec is decoded into the
    registered class of its type (when ``registry`` is given and knows it), else kept as a
    ``DynamicSpec``; a resource without a spec, or with the empty ``Spec{}`` (neither protobuf
    bytes nor YAML text: what COSI sends for tombstones), is a tombstone (``EmptySpec``)."""
    md_bytes: bytes | None = None
    spec_bytes: bytes | None = None
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            md_bytes = value
        elif number == 2 and isinstance(value, bytes):
            spec_bytes = value
    if md_bytes is None:
        raise WireError("resource.metadata is missing")
    md = decode_metadata(md_bytes)
    if spec_bytes is None:
        return Resource(md, EMPTY_SPEC)
    proto, text = decode_spec_fields(spec_bytes)
    if not proto and not text:
        return Resource(md, EMPTY_SPEC)
    cls = registry.spec_class(md.type) if registry is not None else None
    if cls is None:
        return Resource(md, DynamicSpec(proto, text))
    try:
        return Resource(md, cls.unmarshal_proto(proto))
    except Exception as exc:
        raise WireError(f"spec of {md.type} {md.id!r}: {exc}") from None


def decode_event(data: bytes, *, registry: Registry | None = REGISTRY) -> Event:
    resource = old = None
    etype = EventType.CREATED
    error: str | None = None
    bookmark: bytes | None = None
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            resource = decode_resource(value, registry=registry)
        elif number == 2 and isinstance(value, int):
            try:
                etype = EventType(value)
            except ValueError:
                raise WireError(f"event.event_type: unknown value {value}") from None
        elif number == 3 and isinstance(value, bytes):
            old = decode_resource(value, registry=registry)
        elif number == 4:
            error = _text(value, "event.error")
        elif number == 5 and isinstance(value, bytes):
            bookmark = value
    return Event(etype, resource, old, error, bookmark)


def decode_watch_response(data: bytes, *, registry: Registry | None = REGISTRY) -> list[Event]:
    return [decode_event(v, registry=registry) for n, _, v in fields(data) if n == 1 and isinstance(v, bytes)]


def decode_resource_response(data: bytes, *, registry: Registry | None = REGISTRY) -> Resource[Any] | None:
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            return decode_resource(value, registry=registry)
    return None


