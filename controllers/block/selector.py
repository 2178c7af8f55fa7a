"""Disk and volume selector expressions: a small, typed, CEL-like language.

A selector chooses disks for a volume (``provisioning.diskSelector``) or locates a volume
among the discovered ones (``locator.match``)::

    disk.size >= 10GB && !disk.rotational && disk.transport == "nvme"
    disk.model =~ "WDC*" || disk.serial == "S3Z9NB0K"
    volume.partition_label == "EPHEMERAL"

Grammar (``and``/``or``/``not`` are accepted for ``&&``/``||``/``!``)::

    expr    := and ( "||" and )*
    and     := unary ( "&&" unary )*
    unary   := "!" unary | compare
    compare := operand ( ("==" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~") operand )?
    operand := "(" expr ")" | field | string | size | "true" | "false"
    field   := [scope "."] name         (scope is "disk" or "volume", per schema)
    size    := number [unit]            (B, kB/KB, MB, GB, TB, PB; KiB, MiB, GiB, TiB, PiB)

``=~`` / ``!~`` match a string against a shell glob (``*``, ``?``, ``[...]``). Expressions are
type checked when compiled: sizes compare with numbers, strings with strings, booleans only
with ``==``/``!=``; a field on its own must be a boolean. Every error names the position.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

FieldType = Literal["int", "str", "bool"]


class SelectorError(ValueError):
    """A selector that does not parse or type check; the message shows where."""

    def __init__(self, source: str, pos: int, message: str) -> None:
        self.source = source
        self.pos = pos
        self.reason = message
        caret = " " * pos + "^"
        super().__init__(f"selector {source!r}: {message} at column {pos + 1}\n  {source}\n  {caret}")


UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
}

DISK_SCHEMA: dict[str, FieldType] = {
    "name": "str",
    "size": "int",
    "io_size": "int",
    "sector_size": "int",
    "readonly": "bool",
    "model": "str",
    "serial": "str",
    "modalias": "str",
    "wwid": "str",
    "bus_path": "str",
    "sub_system": "str",
    "transport": "str",
    "rotational": "bool",
    "cdrom": "bool",
    "dev_path": "str",
    "uuid": "str",
    "system_disk": "bool",
}

VOLUME_SCHEMA: dict[str, FieldType] = {
    "name": "str",
    "size": "int",
    "type": "str",
    "label": "str",
    "uuid": "str",
    "partition_label": "str",
    "partition_uuid": "str",
    "partition_type": "str",
    "partition_index": "int",
    "partition_table": "str",
    "parent": "str",
    "dev_path": "str",
    "offset": "int",
}

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<op>&&|\|\||==|!=|<=|>=|=~|!~|<|>|!|\(|\))
  | (?P<size>\d+(?:\.\d+)?(?:[A-Za-z_][A-Za-z0-9_]*|\s+(?:[kKmMgGtTpP]i?[bB]|[bB])(?![A-Za-z0-9_]))?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)

_CMP_OPS = ("==", "!=", "<", "<=", ">", ">=", "=~", "!~")


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


# --- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Const:
    value: int | str | bool


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


Node = Field | Const | Not | And | Or | Compare


def _tokenize(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN_RE.match(source, pos)
        if m is None:
            raise SelectorError(source, pos, f"unexpected character {source[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            text = m.group()
            if kind == "ident" and text in ("and", "or", "not"):
                kind, text = "op", {"and": "&&", "or": "||", "not": "!"}[text]
            out.append(_Tok(kind, text, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(source)))
    return out


def parse_size(text: str) -> int:
    """``10GB`` / ``1.5 TiB`` / ``4096`` -> bytes; ValueError names the text."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if m is None or m.group(2).lower() not in UNITS:
        raise ValueError(f"invalid size {text!r}: expected a number with an optional unit ({', '.join(_UNIT_NAMES)})")
    number, unit = m.group(1), UNITS[m.group(2).lower()]
    return int(float(number) * unit) if "." in number else int(number) * unit


_UNIT_NAMES = ("B", "kB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB", "PiB")


class _Parser:
    def __init__(self, source: str, schema: Mapping[str, FieldType], scope: str) -> None:
        self.source = source
        self.schema = schema
        self.scope = scope
        self.toks = _tokenize(source)
        self.i = 0
        self.positions: dict[int, int] = {}

    def at(self, node: Node, pos: int) -> Node:
        self.positions.setdefault(id(node), pos)
        return node

    def pos_of(self, node: Node) -> int:
        return self.positions.get(id(node), 0)

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, tok: _Tok, message: str) -> SelectorError:
        return SelectorError(self.source, tok.pos, message)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error(self.peek(), "empty expression (use 'true' to select everything)")
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(tok, f"unexpected {tok.text!r}, expected '&&', '||' or the end")
        return node

    def expr(self) -> Node:
        start = self.peek().pos
        node = self.conj()
        while self.peek().text == "||" and self.peek().kind == "op":
            self.take()
            node = self.at(Or(node, self.conj()), start)
        return node

    def conj(self) -> Node:
        start = self.peek().pos
        node = self.unary()
        while self.peek().text == "&&" and self.peek().kind == "op":
            self.take()
            node = self.at(And(node, self.unary()), start)
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text == "!":
            self.take()
            return self.at(Not(self.unary()), tok.pos)
        return self.compare()

    def compare(self) -> Node:
        start = self.peek().pos
        left = self.operand()
        tok = self.peek()
        if tok.kind == "op" and tok.text in _CMP_OPS:
            self.take()
            return self.at(Compare(tok.text, left, self.operand()), start)
        return left

    def operand(self) -> Node:
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            node = self.expr()
            close = self.take()
            if close.text != ")":
                raise self.error(close, f"expected ')' to close the '(' at column {tok.pos + 1}")
            return self.at(node, tok.pos)
        if tok.kind == "string":
            return self.at(Const(_unquote(tok.text)), tok.pos)
        if tok.kind == "size":
            try:
                return self.at(Const(parse_size(tok.text)), tok.pos)
            except ValueError:
                units = ", ".join(_UNIT_NAMES)
                message = f"invalid size {tok.text!r}: expected a number with an optional unit ({units})"
                raise self.error(tok, message) from None
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                return self.at(Const(tok.text == "true"), tok.pos)
            name = tok.text
            if name.startswith(self.scope + "."):
                name = name[len(self.scope) + 1 :]
            if name not in self.schema:
                known = ", ".join(f"{self.scope}.{k}" for k in self.schema)
                raise self.error(tok, f"unknown field {tok.text!r} (known: {known})")
            return self.at(Field(name), tok.pos)
        what = "the end of the expression" if tok.kind == "end" else repr(tok.text)
        raise self.error(tok, f"unexpected {what}, expected a field, a string, a size, true or false")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _type_of(node: Node, schema: Mapping[str, FieldType]) -> FieldType:
    if isinstance(node, Field):
        return schema[node.name]
    if isinstance(node, Const):
        v = node.value
        return "bool" if isinstance(v, bool) else "int" if isinstance(v, int) else "str"
    return "bool"


def render(node: Node, scope: str = "disk") -> str:
    """The canonical text of an expression (parses back to the same tree)."""
    if isinstance(node, Field):
        return f"{scope}.{node.name}"
    if isinstance(node, Const):
        v = node.value
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(node, Not):
        return "!(" + render(node.operand, scope) + ")"
    if isinstance(node, And):
        return f"({render(node.left, scope)} && {render(node.right, scope)})"
    if isinstance(node, Or):
        return f"({render(node.left, scope)} || {render(node.right, scope)})"
    return f"({render(node.left, scope)} {node.op} {render(node.right, scope)})"


class Selector:
    """A compiled selector: ``matches(env)`` evaluates it over a field mapping."""

    def __init__(self, source: str, tree: Node, scope: str) -> None:
        self.source = source
        self.tree = tree
        self.scope = scope
        self._fn = _compile(tree)

    def matches(self, env: Mapping[str, Any]) -> bool:
        return bool(self._fn(env))

    def __repr__(self) -> str:
        return f"Selector({self.source!r})"


def _check(parser: _Parser, node: Node) -> None:
    """Type check; errors point at the start of the offending comparison when possible."""
    schema = parser.schema
    if isinstance(node, Not):
        _check(parser, node.operand)
        _expect_bool(parser, node.operand)
    elif isinstance(node, And | Or):
        for side in (node.left, node.right):
            _check(parser, side)
            _expect_bool(parser, side)
    elif isinstance(node, Compare):
        _check(parser, node.left)
        _check(parser, node.right)
        lt, rt = _type_of(node.left, schema), _type_of(node.right, schema)
        text = render(node, parser.scope)
        at = parser.pos_of(node)
        if lt != rt:
            raise SelectorError(parser.source, at, f"cannot compare a {_NAMES[lt]} with a {_NAMES[rt]} in {text}")
        if node.op in ("=~", "!~") and lt != "str":
            raise SelectorError(parser.source, at, f"glob match {node.op} needs strings, got a {_NAMES[lt]} in {text}")
        if node.op in ("<", "<=", ">", ">=") and lt != "int":
            raise SelectorError(parser.source, at, f"ordering {node.op} needs numbers, got a {_NAMES[lt]} in {text}")


_NAMES = {"int": "size/number", "str": "string", "bool": "boolean"}


def _expect_bool(parser: _Parser, node: Node) -> None:
    t = _type_of(node, parser.schema)
    if t != "bool":
        raise SelectorError(
            parser.source,
            parser.pos_of(node),
            f"{render(node, parser.scope)} is a {_NAMES[t]}, not a condition (compare it, e.g. with == or >=)",
        )


def _compile(node: Node) -> Callable[[Mapping[str, Any]], Any]:
    if isinstance(node, Field):
        name = node.name
        return lambda env: env[name]
    if isinstance(node, Const):
        value = node.value
        return lambda env: value
    if isinstance(node, Not):
        f = _compile(node.operand)
        return lambda env: not f(env)
    if isinstance(node, And):
        a, b = _compile(node.left), _compile(node.right)
        return lambda env: a(env) and b(env)
    if isinstance(node, Or):
        a, b = _compile(node.left), _compile(node.right)
        return lambda env: a(env) or b(env)
    a, b = _compile(node.left), _compile(node.right)
    op = _OPS[node.op]
    return lambda env: op(a(env), b(env))


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda x, y: bool(x == y),
    "!=": lambda x, y: bool(x != y),
    "<": lambda x, y: bool(x < y),
    "<=": lambda x, y: bool(x <= y),
    ">": lambda x, y: bool(x > y),
    ">=": lambda x, y: bool(x >= y),
    "=~": lambda x, y: fnmatch.fnmatchcase(x, y),
    "!~": lambda x, y: not fnmatch.fnmatchcase(x, y),
}


def compile_selector(source: str, schema: Mapping[str, FieldType] = DISK_SCHEMA, scope: str = "disk") -> Selector:
    """Parse and type check; SelectorError on any problem."""
    parser = _Parser(source, schema, scope)
    tree = parser.parse()
    _check(parser, tree)
    _expect_bool(parser, tree)
    return Selector(source, tree, scope)


def compile_disk_selector(source: str) -> Selector:
    return compile_selector(source, DISK_SCHEMA, "disk")


def compile_volume_locator(source: str) -> Selector:
    return compile_selector(source, VOLUME_SCHEMA, "volume")
