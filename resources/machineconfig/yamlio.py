"""Stable YAML text for configs and the one bounded YAML reader every config entry point
uses (ApplyConfiguration, the STATE file, ``kosctl validate`` / ``mc patch`` / ``mc diff``,
patches).

Writing: keys in the order given (never sorted), block style, multi-line strings as literal
blocks, no line wrapping; multi-document streams joined by ``---``.

Reading (``load_all``) is hostile-input safe: the size of the text, the number of documents,
the nesting depth, the number of aliases and the size the aliases would expand to are all
bounded *while* the event stream is read, before any tree is built, so an alias bomb, a
self-referencing alias, 100 000 nested brackets or a 5000-digit integer are each one clear
``ConfigErrors`` (document, path, line) instead of a hang, a ``RecursionError`` or a
``ValueError``. The tree is built from parser events with an explicit stack (no recursion);
duplicate keys, explicit tags other than the core ones, complex keys, non-finite floats
and integers outside 64 bits are errors. Aliases share the anchored object (no copy), and
``<<`` merge keys are honoured.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from kos.resources.machineconfig.cooperate import breathe
from kos.resources.machineconfig.errors import ConfigError, ConfigErrors, join_path

# -- limits (one request's worth) -------------------------------------------------------------
MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Largest config text accepted (the gRPC request limit)."""
MAX_DOCUMENTS = 256
MAX_DEPTH = 64
"""Deepest nesting of mappings/lists (Talos configs nest about 12 deep)."""
MAX_ALIASES = 1024
NODE_COST = 64
MAX_EXPANDED = MAX_CONFIG_BYTES
"""Budget for the size of the data once aliases are expanded: scalar bytes + ``NODE_COST``
per node (what a node weighs in memory and in work), so an input may not describe more than
a request's worth of data, nor more than ~65 000 values (a Talos config has ~1000)."""
MAX_INT_DIGITS = 40

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True)
class Limits:
    """The bounds one read obeys (``CONFIG``: a machine config; ``MANIFESTS``: Kubernetes
    manifests inside a config or fetched from ``extraManifests`` URLs, which hold CRDs with
    deep schemas and many documents)."""

    text_bytes: int = MAX_CONFIG_BYTES
    documents: int = MAX_DOCUMENTS
    depth: int = MAX_DEPTH
    aliases: int = MAX_ALIASES
    expanded: int = MAX_EXPANDED
    what: str = "config"


CONFIG_LIMITS = Limits()
MANIFEST_LIMITS = Limits(text_bytes=32 << 20, documents=20000, depth=256, aliases=MAX_ALIASES, expanded=64 << 20,
                         what="manifest")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVE: Any = yaml.resolver.Resolver().resolve
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_T = "tag:yaml.org,2002:"
_CORE_TAGS = {f"{_T}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp", "binary", "seq", "map",
                                    "merge", "value")}


class _Dumper(yaml.SafeDumper):
    """SafeDumper with literal blocks for multi-line strings and indented lists."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_representer)


def dump(data: Any) -> str:
    """One YAML document as text."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16,
                     allow_unicode=True)


def dump_all(docs: list[Any]) -> str:
    """Several documents separated by ``---``."""
    return "---\n".join(dump(d) for d in docs)


# -- reading -------------------------------------------------------------------------------------


class _Bad(Exception):
    """One problem in the current document (stops building it)."""

    def __init__(self, path: str, value: Any, expected: str, *, fatal: bool = False) -> None:
        super().__init__(expected)
        self.path, self.value, self.expected = path, value, expected
        self.fatal = fatal  # a budget of the whole stream is spent: stop reading


def _where(ev: Any) -> str:
    m = getattr(ev, "start_mark", None)
    return f" (line {m.line + 1}, column {m.column + 1})" if m is not None else ""


@dataclass
class _Frame:
    """A mapping or list being built."""

    value: dict[Any, Any] | list[Any]
    path: str
    anchor: str | None
    cost: int = 1
    key: Any = None
    have_key: bool = False
    key_lines: dict[Any, int] = field(default_factory=dict)
    merges: list[dict[Any, Any]] = field(default_factory=list)
    merging: bool = False


_PLAIN_INT = re.compile(r"[1-9][0-9]{0,17}|0")
_SCALAR_CACHE: dict[str, Any] = {}


def _scalar(ev: Any, path: str = "") -> Any:
    """Construct one scalar with the YAML 1.1 core schema, bounded (``path`` is filled in by
    the caller when this raises)."""
    value: str = ev.value
    tag = ev.tag
    if tag is None and ev.implicit[0]:
        # fast paths for the common plain scalars (a 4 MB config has a million of them)
        if _PLAIN_INT.fullmatch(value):
            return int(value)
        hit = _SCALAR_CACHE.get(value, _SCALAR_CACHE)
        if hit is not _SCALAR_CACHE:
            return hit
    if tag in (None, "!"):
        tag = _RESOLVE(yaml.ScalarNode, value, ev.implicit)
        if tag == f"{_T}str" and ev.implicit[0] and len(value) <= 64 and len(_SCALAR_CACHE) < 4096:
            _SCALAR_CACHE[value] = value
    elif tag not in _CORE_TAGS:
        raise _Bad(path, tag, "plain YAML without custom tags" + _where(ev))
    if tag == f"{_T}null":
        return None
    if tag == f"{_T}bool":
        return value.lower() in ("yes", "true", "on", "y")
    if tag == f"{_T}int":
        digits = value.replace("_", "").lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise _Bad(path, f"<integer of {len(digits)} digits>", "an integer that fits in 64 bits" + _where(ev))
        try:
            n = _CONSTRUCTOR.construct_yaml_int(yaml.ScalarNode(tag, value))
        except ValueError:
            raise _Bad(path, value, "an integer" + _where(ev)) from None
        if not _INT_MIN <= n <= _INT_MAX:
            raise _Bad(path, value, "an integer that fits in 64 bits" + _where(ev))
        return n
    if tag == f"{_T}float":
        if len(value) > 400:
            raise _Bad(path, value, "a number of at most 400 characters" + _where(ev))
        try:
            f = float(_CONSTRUCTOR.construct_yaml_float(yaml.ScalarNode(tag, value)))
        except ValueError:
            raise _Bad(path, value, "a number" + _where(ev)) from None
        if not math.isfinite(f):
            raise _Bad(path, value, "a finite number (no .nan or .inf)" + _where(ev))
        return f
    # str, timestamp and binary keep their text (timestamps decode to strings as in Go's
    # yaml.v3 for untyped values; binary stays base64); value ("=") is a string too
    return value


def _doc_label(top: Any, index: int) -> str:
    """How errors name a document: v1alpha1 paths are bare, others ``Kind[name]``."""
    if isinstance(top, dict):
        kind, name = top.get("kind"), top.get("name")
        if isinstance(kind, str) and len(kind) <= 64:
            return f"{kind}[{name}]" if isinstance(name, str | int) and len(str(name)) <= 128 else kind
        if "kind" not in top and "apiVersion" not in top:
            return ""
    return f"<document {index}>"


class _Reader:
    """Builds the documents of one stream from parser events."""

    def __init__(self, what: str, limits: Limits = CONFIG_LIMITS) -> None:
        self.what = what
        self.limits = limits
        self.docs: list[Any] = []
        self.errors: list[ConfigError] = []
        self.expanded = 0
        self.aliases = 0

    def run(self, text: str) -> list[Any]:
        events = yaml.parse(text, Loader=_Loader)
        index = -1
        try:
            for ev in events:
                if isinstance(ev, yaml.DocumentStartEvent):
                    index += 1
                    if index >= self.limits.documents:
                        n = self.limits.documents
                        self.errors.append(ConfigError(f"<document {index}>", f"more than {n} documents",
                                                       f"at most {n} documents in one {self.limits.what}"))
                        break
                    if not self._document(events, index):
                        break
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
            problem = getattr(exc, "problem", None) or str(exc)
            self.errors.append(ConfigError(f"<document {max(index, 0)}> <yaml {where}>", problem, "valid YAML"))
        if self.errors:
            raise ConfigErrors(self.errors, what=self.what)
        return [d for d in self.docs if d is not None]

    def _document(self, events: Any, index: int) -> bool:
        """Read one document; False when reading must stop (a stream-wide budget is spent)."""
        stack: list[_Frame] = []
        anchors: dict[str, tuple[Any, int]] = {}
        open_anchors: set[str] = set()
        root: list[Any] = []
        bad: _Bad | None = None
        depth = 0
        for ev in events:
            if isinstance(ev, yaml.DocumentEndEvent):
                break
            if isinstance(ev, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                depth += 1
                if depth > self.limits.depth and bad is not None:
                    break  # deep flow nesting makes the parser itself quadratic: stop reading
            elif isinstance(ev, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                depth -= 1
            if bad is not None:
                continue  # skip the rest of a broken document (depth still watched above)
            try:
                self._event(ev, stack, anchors, open_anchors, root)
            except _Bad as exc:
                bad = exc
                if exc.fatal:
                    break
        top = root[0] if root else (stack[0].value if stack else None)
        if bad is not None and depth > self.limits.depth:
            bad.fatal = True
        if bad is not None:
            label = _doc_label(top, index)
            path = join_path(label, bad.path) if bad.path else (label or f"<document {index}>")
            if path.startswith("."):
                path = path[1:]
            self.errors.append(ConfigError(path, bad.value, bad.expected))
            return not bad.fatal
        self.docs.append(top)
        return True

    def _charge(self, cost: int, ev: Any, path: str) -> None:
        self.expanded += cost
        if self.expanded > self.limits.expanded:
            raise _Bad(path, f"<{self.expanded} bytes once aliases are expanded>",
                       f"a {self.limits.what} of at most {self.limits.expanded} bytes with aliases expanded "
                       f"(each value counts {NODE_COST} bytes)" + _where(ev), fatal=True)

    def _event(self, ev: Any, stack: list[_Frame], anchors: dict[str, tuple[Any, int]], open_anchors: set[str],
               root: list[Any]) -> None:
        breathe()
        parent = stack[-1] if stack else None
        try:
            self._handle(ev, parent, stack, anchors, open_anchors, root)
        except _Bad as exc:
            if not exc.path:
                exc.path = self._child_path(parent)
            raise

    def _handle(self, ev: Any, parent: _Frame | None, stack: list[_Frame], anchors: dict[str, tuple[Any, int]],
                open_anchors: set[str], root: list[Any]) -> None:
        path = ""  # the caller names the path when something is wrong
        if type(ev) is yaml.ScalarEvent:
            value = _scalar(ev)
            cost = len(ev.value) + NODE_COST
            self.expanded += cost
            if self.expanded > self.limits.expanded:
                self._charge(0, ev, path)
            if ev.anchor is not None:
                anchors[ev.anchor] = (value, cost)
            self._add(parent, value, cost, ev, root)
            return
        if isinstance(ev, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > self.limits.aliases:
                raise _Bad(path, f"*{ev.anchor}", f"at most {self.limits.aliases} aliases in one {self.limits.what}"
                           + _where(ev),
                           fatal=True)
            if ev.anchor in open_anchors:
                raise _Bad(path, f"*{ev.anchor}", "an alias that does not refer to a node containing it "
                           "(self-referencing)" + _where(ev))
            if ev.anchor not in anchors:
                raise _Bad(path, f"*{ev.anchor}", "an alias to an anchor defined before it" + _where(ev))
            value, cost = anchors[ev.anchor]
            self._charge(cost, ev, path)
            self._add(parent, value, cost, ev, root, is_alias=True)
            return
        if isinstance(ev, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if ev.tag not in (None, "!") and ev.tag not in _CORE_TAGS:
                raise _Bad(path, ev.tag, "plain YAML without custom tags" + _where(ev))
            if len(stack) >= self.limits.depth:
                raise _Bad(path, f"<nesting deeper than {self.limits.depth}>",
                           f"mappings and lists nested at most {self.limits.depth} deep" + _where(ev), fatal=True)
            if parent is not None and isinstance(parent.value, dict) and not parent.have_key:
                raise _Bad(path, "<mapping or list used as a key>", "a plain scalar key" + _where(ev))
            self._charge(NODE_COST, ev, path)
            path = self._child_path(parent)
            container: dict[Any, Any] | list[Any] = {} if isinstance(ev, yaml.MappingStartEvent) else []
            if ev.anchor is not None:
                open_anchors.add(ev.anchor)
            stack.append(_Frame(container, path, ev.anchor))
            return
        if isinstance(ev, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            frame = stack.pop()
            if isinstance(frame.value, dict) and frame.merges:
                for m in frame.merges:
                    for k, v in m.items():
                        frame.value.setdefault(k, v)
            if frame.anchor is not None:
                open_anchors.discard(frame.anchor)
                anchors[frame.anchor] = (frame.value, frame.cost)
            self._add(stack[-1] if stack else None, frame.value, frame.cost, ev, root)
            return
        # stream/document start/end events are handled by the caller

    @staticmethod
    def _child_path(parent: _Frame | None) -> str:
        if parent is None:
            return ""
        if isinstance(parent.value, list):
            return join_path(parent.path, len(parent.value))
        if parent.have_key:
            return join_path(parent.path, str(parent.key))
        return parent.path

    def _add(self, parent: _Frame | None, value: Any, cost: int, ev: Any, root: list[Any], *,
             is_alias: bool = False) -> None:
        if parent is None:
            root.append(value)
            return
        parent.cost += cost
        if isinstance(parent.value, list):
            parent.value.append(value)
            return
        if not parent.have_key:
            if isinstance(value, dict | list):
                raise _Bad(parent.path, "<mapping or list used as a key>", "a plain scalar key" + _where(ev))
            if isinstance(ev, yaml.ScalarEvent) and ev.tag is None and ev.implicit[0] and ev.value == "<<":
                parent.merging = True
            elif value in parent.key_lines:
                raise _Bad(join_path(parent.path, str(value)), value,
                           f"each key once in a mapping (also at line {parent.key_lines[value]})" + _where(ev))
            mark = getattr(ev, "start_mark", None)
            parent.key_lines[value] = mark.line + 1 if mark is not None else 0
            parent.key, parent.have_key = value, True
            return
        if parent.merging:
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in items):
                raise _Bad(join_path(parent.path, "<<"), "<merge of a non-mapping>",
                           "a mapping or a list of mappings to merge" + _where(ev))
            parent.merges.extend(items)
            parent.merging = False
            del parent.key_lines["<<"]
        else:
            assert isinstance(parent.value, dict)
            parent.value[parent.key] = value
        parent.key, parent.have_key = None, False


def decode_text(data: str | bytes, *, what: str = "config", limits: Limits = CONFIG_LIMITS) -> str:
    """Bytes to text with the size bound and a clear error for non-UTF-8 input."""
    if len(data) > limits.text_bytes:
        raise ConfigErrors([ConfigError("", f"<{len(data)} bytes>",
                                        f"a {limits.what} of at most {limits.text_bytes} bytes")], what=what)
    if isinstance(data, bytes):
        try:
            data = data.decode()
        except UnicodeDecodeError as exc:
            raise ConfigErrors([ConfigError(f"<byte {exc.start}>", data[exc.start:exc.start + 4],
                                            "UTF-8 text")], what=what) from None
    return data.removeprefix("\ufeff")


def load_all(text: str | bytes, *, what: str = "config", limits: Limits = CONFIG_LIMITS) -> list[Any]:
    """Parse a (multi-document) YAML stream within ``limits``; empty documents are skipped.
    Raises ``ConfigErrors`` (never anything else) naming the document, the path or
    line/column, the value and what was expected."""
    text = decode_text(text, what=what, limits=limits)
    bad = None
    for start in range(0, len(text), 1 << 17):  # in slices: a regex scan holds the GIL
        breathe(force=True)
        bad = _NON_PRINTABLE.search(text, start, start + (1 << 17))
        if bad is not None:
            break
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise ConfigErrors([ConfigError(f"<yaml line {line}, column {column}>", bad.group(),
                                        "printable text (no control characters)")], what=what)
    return _Reader(what, limits).run(text)


def load_manifests(text: str | bytes, *, what: str = "manifest") -> list[Any]:
    """Kubernetes manifests (inline or fetched): the same bounded reader with
    ``MANIFEST_LIMITS`` (an alias bomb in an inline manifest is refused, not expanded)."""
    return load_all(text, what=what, limits=MANIFEST_LIMITS)


def data_cost(value: Any, budget: int = MAX_EXPANDED) -> int:
    """The size of plain data as ``load_all`` counts it (scalar bytes + ``NODE_COST`` per node), walked
    without recursion; stops counting once ``budget`` is passed (returns a value above it)."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            return budget + 1
        if isinstance(v, dict):
            total += NODE_COST + sum(len(str(k)) + NODE_COST for k in v)
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            total += NODE_COST
            stack.extend((x, depth + 1) for x in v)
        else:
            total += NODE_COST + (len(v) if isinstance(v, str) else 1)
        if total > budget:
            return total
    return total


def check_data(docs: list[Any], *, what: str = "config") -> None:
    """Patched or generated data obeys the same bounds as text read by ``load_all``."""
    if len(docs) > MAX_DOCUMENTS:
        raise ConfigErrors([ConfigError("", f"{len(docs)} documents", f"at most {MAX_DOCUMENTS} documents")],
                           what=what)
    cost = data_cost(docs)
    if cost > MAX_EXPANDED:
        raise ConfigErrors([ConfigError("", f"<more than {MAX_EXPANDED} bytes or deeper than {MAX_DEPTH}>",
                                        f"a config of at most {MAX_EXPANDED} bytes nested at most {MAX_DEPTH} deep")],
                           what=what)
