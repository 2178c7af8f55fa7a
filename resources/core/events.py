"""Watch events (cosi-semantics.md 2.1): Created, Updated, Destroyed, Bootstrapped, Errored, Noop."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from kos.resources.core.resource import Resource


class EventType(enum.IntEnum):
    """Numbers follow ``cosi.resource.EventType``."""

    CREATED = 0
    UPDATED = 1
    DESTROYED = 2
    BOOTSTRAPPED = 3
    ERRORED = 4
    NOOP = 5

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(slots=True)
class Event:
    """One watch event. ``resource`` and ``old`` are the stored objects: treat as immutable.

    For Bootstrapped/Noop events ``resource`` is a tombstone marker with an empty id; for
    Errored it is None and ``error`` says why (e.g. buffer overrun).
    """

    type: EventType
    resource: Resource[Any] | None
    old: Resource[Any] | None = None
    error: str | None = None
    bookmark: bytes | None = None

    def __repr__(self) -> str:
        what = self.resource.metadata if self.resource is not None else self.error
        return f"Event({self.type}, {what})"
