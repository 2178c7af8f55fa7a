r"""Label and id queries (cosi-semantics.md 1.3).

Terms of one ``LabelQuery`` are ANDed; a list of queries is ORed (an empty list matches
everything). Matching is tri-state internally: a missing key with an LT* operator or an
unparsable number yields *no answer*, which is false even when the term is inverted.

``IDQuery`` is RE2 (``google-re2``), the engine and syntax of COSI's Go ``regexp``: ``\pL``,
``\z``, ``(?U)``, ``\Q..\E`` and ``[[:alpha:]]`` work; lookaround and backreferences are
syntax errors; matching is linear in the id's length, and a pattern too large or nested too
deeply (over 1000 levels) is refused when it is compiled. An ``IN`` term looks its values up
in a set, so a term costs the same whatever the number of its values.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import re2

from kos.resources.core.echo import echo
from kos.resources.core.metadata import Metadata

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are raised, not written to stderr
_RE2_OPTIONS.max_mem = 8 << 20  # RE2's default, explicit: bounds the compiled program


class LabelOp(enum.IntEnum):
    """Wire numbers follow ``cosi.resource.LabelTerm.Operation``."""

    EXISTS = 0
    EQUAL = 1
    NOT_EXISTS = 2  # deprecated on the wire: Exists + invert
    IN = 3
    LT = 4
    LTE = 5
    LT_NUMERIC = 6
    LTE_NUMERIC = 7


_NUM_RE = re.compile(r"^(-?[0-9]+)([A-Za-z]*)$")
_BINARY = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def parse_number(text: str) -> int | None:
    """Parse ``[-0-9]+`` with an optional unit (``Ki``..``Pi`` binary, ``k``..``p`` decimal).

    Returns None when the text is not a number in that form.
    """
    m = _NUM_RE.match(text)
    if m is None:
        return None
    value = int(m.group(1))
    unit = m.group(2).lower()
    if not unit:
        return value
    if len(unit) == 2 and unit in _BINARY:
        return value * _BINARY[unit]
    mult = _DECIMAL.get(unit[0])
    if mult is None:
        return None
    return value * mult


@dataclass(frozen=True, slots=True)
class LabelTerm:
    key: str
    op: LabelOp = LabelOp.EXISTS
    values: tuple[str, ...] = ()
    invert: bool = False
    _set: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op == LabelOp.NOT_EXISTS:
            object.__setattr__(self, "op", LabelOp.EXISTS)
            object.__setattr__(self, "invert", not self.invert)
        if not isinstance(self.values, tuple):
            object.__setattr__(self, "values", tuple(self.values))
        if self.op == LabelOp.IN:
            object.__setattr__(self, "_set", frozenset(self.values))

    def evaluate(self, labels: Mapping[str, str]) -> bool | None:
        """Tri-state match: True, False, or None (no answer, never inverted)."""
        result = self._base(labels)
        if result is None:
            return None
        return (not result) if self.invert else result

    def _base(self, labels: Mapping[str, str]) -> bool | None:
        op = self.op
        value = labels.get(self.key)
        if op == LabelOp.EXISTS:
            return value is not None
        if value is None:
            return None if op >= LabelOp.LT else False
        if not self.values:
            return False
        if op == LabelOp.EQUAL:
            return value == self.values[0]
        if op == LabelOp.IN:
            return value in self._set
        if op == LabelOp.LT:
            return value.encode() < self.values[0].encode()
        if op == LabelOp.LTE:
            return value.encode() <= self.values[0].encode()
        left, right = parse_number(value), parse_number(self.values[0])
        if left is None or right is None:
            return None
        return left < right if op == LabelOp.LT_NUMERIC else left <= right

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.evaluate(labels) is True


@dataclass(frozen=True, slots=True)
class LabelQuery:
    terms: tuple[LabelTerm, ...] = ()

    def __init__(self, terms: Iterable[LabelTerm] = ()) -> None:
        object.__setattr__(self, "terms", tuple(terms))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(t.evaluate(labels) is True for t in self.terms)


@dataclass(frozen=True, slots=True)
class IDQuery:
    """An unanchored RE2 regular expression over the resource id; empty means no filter."""

    regexp: str = ""
    _compiled: re2._Regexp | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.regexp:
            if _group_depth(self.regexp) > MAX_NESTING:
                raise ValueError(f"invalid id regexp {echo(self.regexp)}: expression nests too deeply")
            try:
                compiled = re2.compile(self.regexp, _RE2_OPTIONS)
            except re2.error as exc:
                raise ValueError(f"invalid id regexp {echo(self.regexp)}: {_re2_reason(exc)}") from None
            object.__setattr__(self, "_compiled", compiled)

    def matches(self, id: str) -> bool:
        return self._compiled is None or self._compiled.search(id) is not None


MAX_NESTING = 1000
"""Deepest group nesting accepted (Go's ``regexp/syntax`` refuses deeper expressions)."""


def _group_depth(pattern: str) -> int:
    """How deep the groups of ``pattern`` nest (escapes, ``\\Q..\\E`` and classes skipped)."""
    depth = deepest = 0
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern.startswith("Q", i + 1):
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            i += 2 if pattern.startswith("^]", i + 1) else 1  # a leading ] is a literal
            if i < n and pattern[i] == "]":
                i += 1
            continue
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth = max(depth - 1, 0)
        i += 1
    return deepest


def _re2_reason(exc: Exception) -> str:
    """RE2's reason without the pattern it quotes (``missing ): <whole pattern>``)."""
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    reason, sep, quoted = str(text).partition(": ")
    return f"{reason}: {echo(quoted, 60)}" if sep else reason


def matches_labels(queries: Sequence[LabelQuery], labels: Mapping[str, str]) -> bool:
    """ORed label queries; an empty list matches everything."""
    if not queries:
        return True
    return any(q.matches(labels) for q in queries)


def matches(md: Metadata, queries: Sequence[LabelQuery], id_query: IDQuery | None) -> bool:
    if id_query is not None and not id_query.matches(md.id):
        return False
    return matches_labels(queries, md.labels)
