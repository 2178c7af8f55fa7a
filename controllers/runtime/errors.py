"""Errors raised by the controller runtime and the outcomes a reconcile can signal.

* ``RegistrationError``: a controller's declaration is invalid (bad inputs, duplicate name,
  exclusive/shared output clash); raised by ``Runtime.register``.
* ``AccessDeniedError``: a controller read or wrote something it did not declare.
* ``RuntimeWatchError``: an input watch failed (e.g. buffer overrun); ``Runtime.run`` ends with it.
* ``RequeueError``: a QController reconcile asks to run the key again after a delay.
* ``SkipReconcile``: a reconcile (or transform function) chose to do nothing; not an error.
* ``DestroyOutput``: raised by a qtransform function to tear down and destroy the output.
"""

from __future__ import annotations


class RegistrationError(ValueError):
    """A controller cannot be registered as declared."""


class AccessDeniedError(PermissionError):
    """A controller accessed a resource outside its declared inputs/outputs."""


class RuntimeWatchError(RuntimeError):
    """An input watch of the runtime failed; the runtime stops."""


class RequeueError(Exception):
    """Run this QController key again ``after`` seconds; ``cause`` (if any) is logged as an error."""

    def __init__(self, after: float, cause: BaseException | None = None) -> None:
        if after < 0:
            raise ValueError(f"requeue interval must not be negative, got {after}")
        self.after = after
        self.cause = cause
        super().__init__(f"requeue after {after:g}s" + (f": {cause}" if cause is not None else ""))


class SkipReconcile(Exception):
    """Nothing to do for this input; not counted as an error."""


class DestroyOutput(Exception):
    """Raised by a qtransform function: the output must not exist for this input."""
