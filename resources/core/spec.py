"""Spec bases: typed dataclass specs with a declared protobuf/YAML encoding, and the
generic (dynamic) spec for types this process does not know.

A typed spec is a dataclass deriving from ``Spec`` whose fields carry their protobuf
number (and optionally a YAML name) through ``spec_field``::

    @dataclass
    class AddressSpecSpec(Spec):
        address: str = spec_field(1)
        link_name: str = spec_field(2, yaml="linkName")
        family: int = spec_field(3, omitempty=True)

YAML names default to lowerCamelCase of the field name, as Talos's specs use. Fields
without a protobuf number are still rendered to YAML but never sent as protobuf.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import enum
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Self

from kos.resources.core import protoenc

if typing.TYPE_CHECKING:
    from kos.resources.core.definition import ResourceDefinition


def spec_field(
    proto: int | None = None,
    *,
    yaml: str | None = None,
    omitempty: bool = False,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    sensitive: bool = False,
) -> Any:
    """A dataclass field of a spec. Lists/dicts default to empty, scalars must give a default
    (or are required)."""
    md: dict[str, Any] = {"proto": proto, "yaml": yaml, "omitempty": omitempty, "sensitive": sensitive}
    if default is not dataclasses.MISSING:
        return dataclasses.field(default=default, metadata=md)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=md)
    return dataclasses.field(metadata=md)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


_IMMUTABLE = (str, int, float, bool, bytes, type(None), enum.Enum, tuple, frozenset)


def _copy_value(v: Any) -> Any:
    if isinstance(v, _IMMUTABLE):
        return v
    if isinstance(v, list):
        if all(isinstance(x, _IMMUTABLE) for x in v):
            return v.copy()
        return [_copy_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy_value(x) for k, x in v.items()}
    if isinstance(v, Spec):
        return v.copy()
    return _copy.deepcopy(v)


def to_yaml_value(v: Any) -> Any:
    """Convert a spec value into plain YAML-able data (dicts keep declaration order)."""
    if isinstance(v, Spec):
        return v.to_yaml()
    if isinstance(v, enum.Enum):
        return str(v) if "__str__" in type(v).__dict__ else v.name.lower()
    if isinstance(v, list | tuple):
        return [to_yaml_value(x) for x in v]
    if isinstance(v, dict):
        return {k: to_yaml_value(x) for k, x in v.items()}
    if isinstance(v, bytes):
        import base64

        return base64.b64encode(v).decode()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {camel(f.name): to_yaml_value(getattr(v, f.name)) for f in dataclasses.fields(v)}
    return v


def _is_empty(v: Any) -> bool:
    return v is None or v == "" or v == 0 or v is False or (isinstance(v, list | dict | tuple) and not v)


class Spec:
    """Base class for typed specs (subclasses are dataclasses)."""

    definition: ClassVar[ResourceDefinition]
    _copy_fields: ClassVar[tuple[str, ...]]
    _scalar_only: ClassVar[bool]

    # -- copying ------------------------------------------------------------------------
    def copy(self) -> Self:
        cls = type(self)
        try:
            names = cls.__dict__["_copy_fields"]
        except KeyError:
            names = _prepare_copy(cls)
        new = cls.__new__(cls)
        d = self.__dict__
        if cls.__dict__["_scalar_only"]:
            new.__dict__.update(d)
        else:
            nd = new.__dict__
            for n in names:
                nd[n] = _copy_value(d[n])
        return new

    # -- equality -------------------------------------------------------------------------
    def equal(self, other: object) -> bool:
        return self == other

    # -- encodings ------------------------------------------------------------------------
    def marshal_proto(self) -> bytes:
        return protoenc.encode(self)

    @classmethod
    def unmarshal_proto(cls, data: bytes) -> Self:
        obj: Self = protoenc.decode(cls, data)
        return obj

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.metadata.get("omitempty") and _is_empty(v):
                continue
            out[f.metadata.get("yaml") or camel(f.name)] = to_yaml_value(v)
        return out

    @classmethod
    def from_yaml(cls, data: dict[str, Any] | None) -> Self:
        """Build a spec from its YAML form (names as ``to_yaml`` writes them)."""
        data = data or {}
        hints = protoenc.field_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = f.metadata.get("yaml") or camel(f.name)
            if key in data:
                kwargs[f.name] = _from_yaml_value(hints[f.name], data[key])
        return cls(**kwargs)

    def redacted(self) -> Self:
        """A copy with sensitive fields blanked, for logs."""
        new = self.copy()
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.metadata.get("sensitive"):
                setattr(new, f.name, type(getattr(self, f.name))())
        return new


def _from_yaml_value(tp: Any, v: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        if v is None:
            return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return [_from_yaml_value(inner, x) for x in (v or [])]
    if origin is dict:
        _, inner = typing.get_args(tp)
        return {str(k): _from_yaml_value(inner, x) for k, x in (v or {}).items()}
    if isinstance(tp, type):
        if issubclass(tp, Spec):
            return tp.from_yaml(v)
        if issubclass(tp, enum.Enum):
            if isinstance(v, str):
                for m in tp:
                    if str(m) == v or m.name.lower() == v.lower():
                        return m
            return tp(v)
        if tp is bytes and isinstance(v, str):
            import base64

            return base64.b64decode(v)
    return v


def _prepare_copy(cls: type[Spec]) -> tuple[str, ...]:
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    hints = protoenc.field_hints(cls)
    scalar_only = all(
        hints[n] in (str, int, float, bool, bytes) or (isinstance(hints[n], type) and issubclass(hints[n], enum.Enum))
        for n in names
    )
    cls._copy_fields = names
    cls._scalar_only = scalar_only
    return names


class DynamicSpec:
    """The spec of a resource whose type this process has no class for: the protobuf bytes
    and the YAML text as received. Immutable, so copies share it."""

    __slots__ = ("proto", "yaml")

    def __init__(self, proto: bytes = b"", yaml: str = "") -> None:
        self.proto = proto
        self.yaml = yaml

    def copy(self) -> DynamicSpec:
        return self

    def equal(self, other: object) -> bool:
        return isinstance(other, DynamicSpec) and self.proto == other.proto and self.yaml == other.yaml

    def __eq__(self, other: object) -> bool:
        return self.equal(other)

    __hash__ = None  # type: ignore[assignment]

    def marshal_proto(self) -> bytes:
        return self.proto

    def to_yaml(self) -> Any:
        import yaml as _yaml

        return _yaml.safe_load(self.yaml) if self.yaml else {}

    def __repr__(self) -> str:
        return f"DynamicSpec(proto={len(self.proto)} bytes, yaml={self.yaml!r})"


class EmptySpec:
    """The spec of tombstones and markers: nothing."""

    __slots__ = ()

    def copy(self) -> EmptySpec:
        return self

    def equal(self, other: object) -> bool:
        return isinstance(other, EmptySpec)

    def marshal_proto(self) -> bytes:
        return b""

    def to_yaml(self) -> Any:
        return {}


EMPTY_SPEC = EmptySpec()

SpecFactory = Callable[[], Spec]
