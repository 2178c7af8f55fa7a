"""Config errors that a person can act on: each names the YAML path, the offending value
and what was expected; ``ConfigErrors`` carries all of them at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_MISSING: Any = object()


SHOW_CHARS = 80
MAX_SHOWN_ERRORS = 20
MAX_KEPT_ERRORS = 1000
"""Collectors keep this many errors and only count the rest (a 4 MB list of wrong values
must not become millions of error objects)."""
"""A message lists at most this many errors, then how many more there are (a status
message with thousands of lines is slow to encode and useless to read)."""


def show(value: Any) -> str:
    """A short rendering of a value for messages (strings quoted, long values cut); the
    work is bounded by the length shown, whatever the size of the value."""
    if value is _MISSING:
        return "<missing>"
    parts: list[str] = []
    _compact(value, parts, SHOW_CHARS + 4, 0)
    text = "".join(parts)
    return text if len(text) <= SHOW_CHARS else text[: SHOW_CHARS - 3] + "..."


def _compact(value: Any, out: list[str], budget: int, depth: int) -> int:
    """Append a compact rendering of ``value`` to ``out``; stop once ``budget`` characters
    are written; returns the budget left."""
    if budget <= 0:
        return 0
    if depth > 8:
        out.append("...")
        return budget - 3
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        out.append("{" if isinstance(value, dict) else "[")
        budget -= 1
        for i, (k, v) in enumerate(items):
            if budget <= 0:
                break
            if i:
                out.append(", ")
                budget -= 2
            if isinstance(value, dict):
                key = _short_repr(k, budget) if not isinstance(k, str) else k[:budget]
                out.append(f"{key}: ")
                budget -= len(key) + 2
            budget = _compact(v, out, budget, depth + 1)
        out.append("}" if isinstance(value, dict) else "]")
        return budget - 1
    text = _short_repr(value, budget)
    out.append(text)
    return budget - len(text)


def _short_repr(value: Any, budget: int) -> str:
    if isinstance(value, str | bytes) and len(value) > budget:
        value = value[: budget + 1]
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<integer of {value.bit_length()} bits>"
    return repr(value)


@dataclass(frozen=True)
class ConfigError:
    """One problem: ``path`` (``machine.network.interfaces[0].mtu``), the value found, and
    what was expected instead."""

    path: str
    value: Any
    expected: str
    unknown: bool = False

    def __str__(self) -> str:
        where = self.path or "<document>"
        if len(where) > 200:
            where = where[:197] + "..."
        if self.unknown:
            return f"{where}: unknown field (value {show(self.value)}), expected {self.expected}"
        if self.value is _MISSING:
            return f"{where}: missing, expected {self.expected}"
        return f"{where}: {show(self.value)} is invalid, expected {self.expected}"


MISSING = _MISSING


class ErrorList(list[ConfigError]):
    """A list of errors that keeps the first ``MAX_KEPT_ERRORS`` and counts the rest."""

    dropped: int = 0

    def append(self, e: ConfigError) -> None:
        if len(self) < MAX_KEPT_ERRORS:
            super().append(e)
        else:
            self.dropped += 1


class ConfigErrors(ValueError):
    """All the errors found in a config, one per line."""

    def __init__(self, errors: Iterable[ConfigError], *, what: str = "config", dropped: int = 0) -> None:
        self.errors = list(errors)
        self.what = what
        self.dropped = dropped  # errors counted but not kept (past MAX_KEPT_ERRORS)
        n = len(self.errors) + dropped
        lines = "\n".join(f"  - {e}" for e in self.errors[:MAX_SHOWN_ERRORS])
        more = f"\n  ... and {n - MAX_SHOWN_ERRORS} more" if n > MAX_SHOWN_ERRORS else ""
        super().__init__(f"{what}: {n} error{'s' if n != 1 else ''}:\n{lines}{more}")

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]


def join_path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key
