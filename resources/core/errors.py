"""State errors, mirroring COSI's error kinds (runtime:pkg/state/errors.go).

``OwnerConflictError`` and ``PhaseConflictError`` are kinds of ``ConflictError``, so
``except ConflictError`` catches all three, as ``IsConflictError`` does in Go. A conflict
carries the pointer of the resource so callers can filter by namespace/type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kos.resources.core.metadata import Pointer


class StateError(Exception):
    """Base of every error raised by a State."""


class NotFoundError(StateError):
    def __init__(self, ptr: Pointer | None = None, message: str | None = None) -> None:
        self.ptr = ptr
        super().__init__(message or f"resource {ptr} doesn't exist")


class ConflictError(StateError):
    def __init__(self, ptr: Pointer | None = None, message: str | None = None) -> None:
        self.ptr = ptr
        super().__init__(message or f"resource {ptr} conflict")


class OwnerConflictError(ConflictError):
    pass


class PhaseConflictError(ConflictError):
    pass


class InvalidWatchBookmarkError(StateError):
    pass


class UnsupportedError(StateError):
    pass


def is_conflict(err: BaseException, *, namespace: str | None = None, type: str | None = None) -> bool:
    """True if ``err`` is a conflict, optionally only for resources of this namespace/type."""
    if not isinstance(err, ConflictError):
        return False
    if err.ptr is None:
        return namespace is None and type is None
    if namespace is not None and err.ptr.namespace != namespace:
        return False
    return not (type is not None and err.ptr.type != type)
