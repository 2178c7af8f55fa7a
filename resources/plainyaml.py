"""``load(text)``: YAML as kos writes it, read without importing PyYAML.

kosconfig files and the specs a node sends (``kos.apis.yamlenc``, ``kos.resources.core.dump``)
are block mappings and sequences of plain scalars; reading them is what every ``kosctl get``
does, and ``import yaml`` costs more than the rest of its reading (issue 17). ``load`` reads
that subset - block mappings and sequences (indented or not), ``{}``/``[]``, plain strings,
one-line quoted strings without escapes, decimal integers, ``true``/``false``, ``null`` - and
hands anything else (escapes, flow collections, block scalars, anchors, tags, comments,
floats, dates, numbers in other bases, YAML 1.1 words such as ``yes``/``off``, tabs and
control characters) to PyYAML's safe loader, so the result is always what PyYAML gives
(tests/resources/test_plainyaml.py checks both on generated documents).
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_DOTTED = re.compile(r"[0-9]+(\.[0-9]+){2,}(/[0-9]+|:[0-9]+)?")  # addresses, versions: strings in YAML 1.1
_COLONS = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*(/[0-9]+)?")  # IPv6 and MAC addresses...
_HEX = re.compile(r"[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*")  # digests, ids: strings unless binary (0b...)
_BINARY = re.compile(r"0b[01_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+")  # ...unless YAML 1.1 reads a base-60 int
_WORDS: dict[str, Any] = {"null": None, "Null": None, "NULL": None, "~": None, "true": True, "True": True,
                          "TRUE": True, "false": False, "False": False, "FALSE": False}
# first characters that make a plain scalar something else (or need the full reader)
_SPECIAL_START = set("\"'|>&*!%@`{}[]#?,-+.0123456789<=~:")
_OTHER_WORDS = {"yes", "no", "on", "off", "y", "n"}  # YAML 1.1 booleans (any case): PyYAML decides


class OutsideSubset(ValueError):
    """The text uses YAML this reader leaves to PyYAML."""


_Unsupported = OutsideSubset


def parse_subset(text: str) -> Any:
    """The document, if it is within the subset (else ``OutsideSubset``)."""
    return _Reader(text).document()


def load(text: str, *, c_loader: bool = True) -> Any:
    """What PyYAML's safe loader gives for ``text`` (its C loader unless ``c_loader`` is
    false: the two differ on some invalid text), read here when it is within the subset."""
    try:
        return _Reader(text).document()
    except OutsideSubset:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if c_loader else yaml.SafeLoader
        return yaml.load(text, Loader=loader)


def _quoted(s: str) -> str:
    """A one-line quoted scalar: '...' ('' is a quote) or "..." without escapes."""
    inner = s[1:-1]
    if len(s) < 2 or s[-1] != s[0]:
        raise _Unsupported
    if s[0] == "'":
        if "'" in inner.replace("''", ""):
            raise _Unsupported
        return inner.replace("''", "'")
    if '"' in inner or "\\" in inner:
        raise _Unsupported
    return inner


def _scalar(s: str) -> Any:
    if not s:
        return None
    if s[0] in "'\"":
        return _quoted(s)
    if s in _WORDS:
        return _WORDS[s]
    if _INT.fullmatch(s):
        return int(s)
    if ": " in s or " #" in s or s.endswith(":") or s.lower() in _OTHER_WORDS:
        raise _Unsupported
    if s[0] in _SPECIAL_START and not _DOTTED.fullmatch(s) and not (
            _COLONS.fullmatch(s) and not _SEXAGESIMAL.fullmatch(s)) and not (
            _HEX.fullmatch(s) and not _BINARY.fullmatch(s)):
        raise _Unsupported
    return s


def _value(s: str) -> Any:
    if s == "{}":
        return {}
    if s == "[]":
        return []
    return _scalar(s)


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines: list[tuple[int, str]] = []
        if not text.replace("\n", "").isprintable():  # tabs, CR, controls, BOM, odd spaces
            raise _Unsupported
        for raw in text.split("\n"):
            line = raw.rstrip(" ")
            if not line.strip():
                continue
            body = line.lstrip(" ")
            if body.startswith(("#", "---", "...")):
                raise _Unsupported
            self.lines.append((len(line) - len(body), body))
        self.pos = 0

    def document(self) -> Any:
        if not self.lines:
            return None
        indent, body = self.lines[0]
        if indent:
            raise _Unsupported
        if body.startswith("- ") or body == "-":
            out: Any = self.sequence(0)
        elif ":" in body and not body.startswith(("{", "[")):
            out = self.mapping(0)
        elif len(self.lines) == 1:
            out = _value(body)
            self.pos = 1
        else:
            raise _Unsupported
        if self.pos != len(self.lines):
            raise _Unsupported
        return out

    def block(self, parent: int, sequence_ok: bool) -> Any:
        """The value under ``key:`` (more indented, or an indentless sequence); None when empty."""
        if self.pos >= len(self.lines):
            return None
        indent, body = self.lines[self.pos]
        is_item = body.startswith("- ") or body == "-"
        if indent > parent:
            return self.sequence(indent) if is_item else self.mapping(indent)
        if indent == parent and is_item and sequence_ok:
            return self.sequence(indent)
        return None

    def mapping(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while self.pos < len(self.lines):
            ind, body = self.lines[self.pos]
            if ind < indent:
                break
            if ind > indent or body.startswith("- ") or body == "-":
                raise _Unsupported
            self.entry(body, indent, out)
        return out

    def entry(self, body: str, indent: int, out: dict[str, Any]) -> None:
        key, sep, rest = body.partition(": ")
        if not sep:
            if not body.endswith(":"):
                raise _Unsupported
            key, rest = body[:-1], ""
        rest = rest.lstrip(" ")
        k = _scalar(key) if not key.endswith(" ") else None
        if not isinstance(k, str) or k in out:
            raise _Unsupported
        self.pos += 1
        if rest:
            out[k] = _value(rest)
        else:
            out[k] = self.block(indent, sequence_ok=True)

    def sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while self.pos < len(self.lines):
            ind, body = self.lines[self.pos]
            if ind < indent or (ind == indent and not (body.startswith("- ") or body == "-")):
                break
            if ind > indent:
                raise _Unsupported
            item = body[2:].lstrip(" ") if body != "-" else ""
            if not item:
                self.pos += 1
                out.append(self.block(indent, sequence_ok=False))
            elif item.startswith("- ") or item == "-":
                raise _Unsupported  # a sequence directly in a sequence item
            elif ": " in item or item.endswith(":"):
                # a mapping starting on the item's line; its other keys align with the first
                sub = indent + (len(body) - len(item))
                self.lines[self.pos] = (sub, item)
                out.append(self.mapping(sub))
            else:
                self.pos += 1
                out.append(_value(item))
        return out
