"""Config errors that a person can act on: each names the YAML path, the offending value
and what was expected; ``ConfigErrors`` carries all of them at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_MISSING: Any = object()


def show(value: Any) -> str:
    """A short rendering of a value for messages (strings quoted, long values cut)."""
    if value is _MISSING:
        return "<missing>"
    text = repr(value) if not isinstance(value, dict | list) else _compact(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
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
        if self.unknown:
            return f"{where}: unknown field (value {show(self.value)}), expected {self.expected}"
        if self.value is _MISSING:
            return f"{where}: missing, expected {self.expected}"
        return f"{where}: {show(self.value)} is invalid, expected {self.expected}"


MISSING = _MISSING


class ConfigErrors(ValueError):
    """All the errors found in a config, one per line."""

    def __init__(self, errors: Iterable[ConfigError], *, what: str = "config") -> None:
        self.errors = list(errors)
        self.what = what
        n = len(self.errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{what}: {n} error{'s' if n != 1 else ''}:\n{lines}")

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]


def join_path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key
