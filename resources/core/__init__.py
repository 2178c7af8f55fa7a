"""The COSI core of kos: resource metadata, versions, queries, definitions, errors and states.

Everything a controller or an API needs to talk about resources is importable from here::

    from kos.resources.core import Metadata, Resource, Phase, InMemoryState, ...
"""

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

__all__ = [
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
    "UnsupportedError",
    "is_conflict",
    "tombstone",
]
