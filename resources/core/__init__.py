"""The COSI core of kos: resource metadata, versions, queries, definitions, errors and states.

Everything a controller or an API needs to talk about resources is importable from here::

    from kos.resources.core import Metadata, Resource, Phase, InMemoryState, ...
"""

from kos.resources.core.echo import ECHO_CHARS, MESSAGE_CHARS, cap, echo
from kos.resources.core.errors import (
    ConflictError,
    InvalidWatchBookmarkError,
    NotFoundError,
    OwnerConflictError,
    PhaseConflictError,
    StateError,
    UnsupportedError,
    is_conflict,
)
from kos.resources.core.metadata import Kind, Metadata, Phase, Pointer
from kos.resources.core.query import IDQuery, LabelOp, LabelQuery, LabelTerm
from kos.resources.core.resource import Resource, tombstone
from kos.resources.core.slicing import TimeSlice

__all__ = [
    "ECHO_CHARS",
    "MESSAGE_CHARS",
    "ConflictError",
    "IDQuery",
    "InvalidWatchBookmarkError",
    "Kind",
    "LabelOp",
    "LabelQuery",
    "LabelTerm",
    "Metadata",
    "NotFoundError",
    "OwnerConflictError",
    "Phase",
    "PhaseConflictError",
    "Pointer",
    "Resource",
    "StateError",
    "TimeSlice",
    "UnsupportedError",
    "cap",
    "echo",
    "is_conflict",
    "tombstone",
]
