"""Echoing caller input in error messages, bounded.

Every error text that quotes something a caller sent (an id, a label value, a regexp, a type
name) goes through ``echo``: a value longer than ``ECHO_CHARS`` characters is cut there and
marked with an ellipsis and its full length, so a 100 kB regexp cannot turn into a 100 kB gRPC
status message (which clients refuse to read). ``cap`` bounds a whole message the same way.
"""

from __future__ import annotations

ECHO_CHARS = 200
"""Longest stretch of caller input quoted in an error message."""

MESSAGE_CHARS = 8192
"""Longest error message as a whole (``cap``; as the config API bounds its status messages)."""


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` for strings and bytes (so quoting shows exactly what was sent), ``str``
    otherwise; longer than ``limit`` characters: the first ``limit`` of them, then
    ``…(N chars)``."""
    if isinstance(value, str | bytes):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}…({len(value)} chars)"
    text = str(value)
    return cap(text, limit)


def cap(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (then ``…(N chars)``) when longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} chars)"
