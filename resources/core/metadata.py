"""Resource metadata: pointer, kind, version, phase, owner, finalizers, labels, annotations.

Semantics follow COSI's ``resource.Metadata`` (see cosi-semantics.md 1.1-1.2):

* the version is ``None`` ("undefined") or a positive integer; the store sets it;
* ``set_owner`` only succeeds when the owner is empty or already the same;
* finalizers are an ordered tuple with set semantics (``add_finalizer`` returns False
  when already present); equality compares them as a multiset;
* labels and annotations are plain dicts, copied when the metadata is copied;
* ``created``/``updated`` are POSIX timestamps (float seconds) and are ignored by equality.

Metadata is a ``__slots__`` class rather than a dataclass because it is copied on every
store write and read; ``copy`` is the hot path of the whole system.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from typing import NamedTuple


class Pointer(NamedTuple):
    """(namespace, type, id): the address of one resource."""

    namespace: str
    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}({self.namespace}/{self.id})"

    @property
    def kind(self) -> Kind:
        return Kind(self.namespace, self.type)


class Kind(NamedTuple):
    """(namespace, type): a collection of resources."""

    namespace: str
    type: str

    def __str__(self) -> str:
        return f"{self.type}({self.namespace})"

    def pointer(self, id: str) -> Pointer:
        return Pointer(self.namespace, self.type, id)


class Phase(enum.IntEnum):
    RUNNING = 0
    TEARING_DOWN = 1

    def __str__(self) -> str:
        return _PHASE_NAMES[self]

    @classmethod
    def parse(cls, text: str) -> Phase:
        try:
            return _PHASE_BY_NAME[text]
        except KeyError:
            raise ValueError(f"unknown phase {text!r}: expected 'running' or 'tearingDown'") from None


_PHASE_NAMES = {Phase.RUNNING: "running", Phase.TEARING_DOWN: "tearingDown"}
_PHASE_BY_NAME = {v: k for k, v in _PHASE_NAMES.items()}


def version_string(version: int | None) -> str:
    """The wire/YAML form of a version: ``undefined`` or a decimal."""
    return "undefined" if version is None else str(version)


def parse_version(text: str) -> int | None:
    if text in ("", "undefined"):
        return None
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"invalid version {text!r}: expected 'undefined' or a decimal number") from None
    if v < 0:
        raise ValueError(f"invalid version {text!r}: must not be negative")
    return v


class Metadata:
    __slots__ = (
        "namespace",
        "type",
        "id",
        "version",
        "owner",
        "phase",
        "finalizers",
        "labels",
        "annotations",
        "created",
        "updated",
    )

    namespace: str
    type: str
    id: str
    version: int | None
    owner: str
    phase: Phase
    finalizers: tuple[str, ...]
    labels: dict[str, str]
    annotations: dict[str, str]
    created: float
    updated: float

    def __init__(
        self,
        namespace: str,
        type: str,
        id: str,
        *,
        version: int | None = None,
        owner: str = "",
        phase: Phase = Phase.RUNNING,
        finalizers: tuple[str, ...] | list[str] = (),
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        created: float | None = None,
        updated: float | None = None,
    ) -> None:
        now = time.time() if created is None or updated is None else 0.0
        self.namespace = namespace
        self.type = type
        self.id = id
        self.version = version
        self.owner = owner
        self.phase = phase
        self.finalizers = tuple(finalizers)
        self.labels = dict(labels) if labels else {}
        self.annotations = dict(annotations) if annotations else {}
        self.created = now if created is None else created
        self.updated = now if updated is None else updated

    # -- identity ---------------------------------------------------------------------
    @property
    def pointer(self) -> Pointer:
        return Pointer(self.namespace, self.type, self.id)

    @property
    def kind(self) -> Kind:
        return Kind(self.namespace, self.type)

    def __str__(self) -> str:
        return f"{self.type}({self.namespace}/{self.id}@{version_string(self.version)})"

    __repr__ = __str__

    # -- copying ----------------------------------------------------------------------
    def copy(self) -> Metadata:
        new = Metadata.__new__(Metadata)
        new.namespace = self.namespace
        new.type = self.type
        new.id = self.id
        new.version = self.version
        new.owner = self.owner
        new.phase = self.phase
        new.finalizers = self.finalizers
        new.labels = self.labels.copy() if self.labels else {}
        new.annotations = self.annotations.copy() if self.annotations else {}
        new.created = self.created
        new.updated = self.updated
        return new

    # -- owner / phase ----------------------------------------------------------------
    def set_owner(self, owner: str) -> None:
        if self.owner and self.owner != owner:
            raise ValueError(f"owner is already set to {self.owner!r}")
        self.owner = owner

    # -- finalizers -------------------------------------------------------------------
    def add_finalizer(self, *finalizers: str) -> bool:
        """Add finalizers not yet present; True if anything changed."""
        new = [f for f in finalizers if f not in self.finalizers]
        if not new:
            return False
        # de-duplicate within the request too, keeping order
        self.finalizers = self.finalizers + tuple(dict.fromkeys(new))
        return True

    def remove_finalizer(self, *finalizers: str) -> bool:
        """Remove finalizers; True if anything changed."""
        kept = tuple(f for f in self.finalizers if f not in finalizers)
        if len(kept) == len(self.finalizers):
            return False
        self.finalizers = kept
        return True

    def has_finalizer(self, finalizer: str) -> bool:
        return finalizer in self.finalizers

    # -- equality ---------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metadata):
            return NotImplemented
        if (
            self.namespace != other.namespace
            or self.type != other.type
            or self.id != other.id
            or self.phase != other.phase
            or self.owner != other.owner
            or self.version != other.version
            or self.labels != other.labels
            or self.annotations != other.annotations
        ):
            return False
        a, b = self.finalizers, other.finalizers
        if a == b:
            return True
        return len(a) == len(b) and Counter(a) == Counter(b)

    __hash__ = None  # type: ignore[assignment]
