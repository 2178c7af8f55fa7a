"""The resource: metadata plus a spec.

``Resource[S]`` is the one concrete resource class; its ``spec`` is a typed ``Spec``
dataclass, a ``DynamicSpec`` (unknown type, carried as protobuf + YAML) or ``EmptySpec``
(tombstones). ``Resource.new(spec, id)`` takes type and default namespace from the spec's
resource definition.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from kos.resources.core.metadata import Kind, Metadata, Phase, Pointer
from kos.resources.core.spec import EMPTY_SPEC, EmptySpec

S = TypeVar("S")


class Resource(Generic[S]):
    __slots__ = ("metadata", "spec")

    metadata: Metadata
    spec: S

    def __init__(self, metadata: Metadata, spec: S) -> None:
        self.metadata = metadata
        self.spec = spec

    @classmethod
    def new(cls, spec: S, id: str, namespace: str | None = None, **md: Any) -> Resource[S]:
        """A new resource of the spec's registered type (namespace defaults to the RD's)."""
        definition = type(spec).definition  # type: ignore[attr-defined]
        ns = definition.default_namespace if namespace is None else namespace
        return cls(Metadata(ns, definition.type, id, **md), spec)

    # -- identity -----------------------------------------------------------------------
    @property
    def md(self) -> Metadata:
        return self.metadata

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def pointer(self) -> Pointer:
        m = self.metadata
        return Pointer(m.namespace, m.type, m.id)

    @property
    def kind(self) -> Kind:
        return Kind(self.metadata.namespace, self.metadata.type)

    @property
    def phase(self) -> Phase:
        return self.metadata.phase

    @property
    def version(self) -> int | None:
        return self.metadata.version

    # -- copying / equality -------------------------------------------------------------
    def copy(self) -> Resource[S]:
        new = Resource.__new__(Resource)
        new.metadata = self.metadata.copy()
        new.spec = self.spec.copy()  # type: ignore[attr-defined]
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resource):
            return NotImplemented
        return self.metadata == other.metadata and _spec_equal(self.spec, other.spec)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Resource({self.metadata}, {self.spec!r})"

    @property
    def is_tombstone(self) -> bool:
        return isinstance(self.spec, EmptySpec)


def _spec_equal(a: Any, b: Any) -> bool:
    eq = getattr(a, "equal", None)
    if eq is not None:
        return bool(eq(b))
    return bool(a == b)


def spec_equal(a: Any, b: Any) -> bool:
    return _spec_equal(a, b)


def tombstone(ptr: Pointer | Metadata, version: int | None = None) -> Resource[EmptySpec]:
    """A metadata-only resource: a deleted object or a marker (Bootstrapped, Noop)."""
    if isinstance(ptr, Metadata):
        md = ptr.copy()
    else:
        md = Metadata(ptr.namespace, ptr.type, ptr.id, version=version, created=0.0, updated=0.0)
    return Resource(md, EMPTY_SPEC)
