"""Resource output for ``kosctl get`` in talosctl's formats.

* ``table``: tab-aligned ``NODE NAMESPACE TYPE ID VERSION`` plus one column per print column
  of the resource definition (a JSONPath over the spec); with ``--watch`` a leading ``*``
  column carries ``+`` (created), ``-`` (destroyed) or blank (updated);
* ``yaml``: documents separated by ``---``, each starting ``node: N`` (then ``event: E`` when
  watching) followed by the resource's ``metadata``/``spec`` YAML as the server rendered it;
* ``json``: one indented JSON object per resource ``{node, [event,] metadata, spec}``;
* ``jsonpath``: the JSONPath expression evaluated over that object, one line per match.

The JSONPath subset is the one print columns use: ``{.a.b}``, ``{.a[0]}``, ``{.a[*].b}``,
``{.a['key.with.dots']}``, several ``{...}`` parts with literal text between them.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

from kos.apis.kosctl.errors import CLIError

FORMATS = ("table", "yaml", "json", "jsonpath")

_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\*|-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def parse_jsonpath(expr: str) -> list[str | list[str | int]]:
    """``"x={.a[0].b} y"`` -> ``["x=", [a, 0, b], " y"]`` (strings are literal text)."""
    out: list[str | list[str | int]] = []
    pos = 0
    for m in re.finditer(r"\{([^{}]*)\}", expr):
        if m.start() > pos:
            out.append(expr[pos : m.start()])
        out.append(_path(m.group(1), expr))
        pos = m.end()
    if pos < len(expr):
        out.append(expr[pos:])
    if not any(isinstance(p, list) for p in out):
        # a bare path without braces, as kubectl accepts
        return [_path(expr.strip(), expr)]
    return out


def _path(text: str, whole: str) -> list[str | int]:
    steps: list[str | int] = []
    s = text.strip()
    if s.startswith("$"):
        s = s[1:]
    if s in ("", "."):
        return steps
    if not s.startswith((".", "[")):
        s = "." + s
    pos = 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if m is None:
            raise CLIError(f"jsonpath {whole!r}: cannot parse at {s[pos:]!r} (expected .field, [N], [*] or ['key'])")
        if m.group(1) is not None:
            steps.append(m.group(1))
        elif m.group(2) is not None:
            steps.append("*" if m.group(2) == "*" else int(m.group(2)))
        else:
            steps.append(m.group(3) if m.group(3) is not None else m.group(4))
        pos = m.end()
    return steps


def evaluate(path: list[str | int], data: Any) -> list[Any]:
    values = [data]
    for step in path:
        nxt: list[Any] = []
        for v in values:
            if step == "*":
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
            elif isinstance(step, int):
                if isinstance(v, list) and -len(v) <= step < len(v):
                    nxt.append(v[step])
            elif isinstance(v, dict) and step in v:
                nxt.append(v[step])
        values = nxt
    return values


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"), sort_keys=False, default=str)
    return str(v)


def render(parts: list[str | list[str | int]], data: Any) -> str:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        else:
            out.append(" ".join(_text(v) for v in evaluate(p, data)))
    return "".join(out)


def _load_yaml(text: str) -> Any:
    from kos.resources import plainyaml  # PyYAML only for what kos's own YAML writers do not produce

    try:
        return plainyaml.load(text)
    except Exception as exc:
        import yaml

        if isinstance(exc, yaml.YAMLError):
            return text
        raise


def _spec_text(spec: Any) -> str:
    """The spec's YAML: as the node sent it (``DynamicSpec`` and kosctl get's light resources)."""
    text = getattr(spec, "yaml", None)
    if isinstance(text, str):
        return text
    from kos.resources.core import spec_yaml

    return spec_yaml(spec)


def _version(version: int | None) -> str:
    return "undefined" if version is None else str(version)  # kos.resources.core.version_string


def _plain(v: Any) -> Any:
    """YAML-loaded data -> JSON-safe data (timestamps become strings)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    import datetime

    if isinstance(v, datetime.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%SZ") if v.utcoffset() in (None, datetime.timedelta(0)) else v.isoformat()
    return str(v)


class Printer:
    """Writes resources (and watch events) to ``out`` (default: stdout) in one format."""

    def __init__(
        self,
        format: str,
        columns: list[tuple[str, list[str | list[str | int]]]],  # (NAME, parsed JSONPath)
        watch: bool = False,
        display: str = "",
        jsonpath: list[str | list[str | int]] | None = None,
        out: TextIO | None = None,
        order: list[str] | None = None,  # node labels in the order the user named them
    ) -> None:
        self.format = format
        self.columns = columns
        self.watch = watch
        self.display = display
        self.jsonpath = jsonpath if jsonpath is not None else []
        self.out = out if out is not None else sys.stdout
        self.order = order if order is not None else []
        self._pending: list[tuple[str, Any]] = []
        self._docs = 0
        self._rows: list[list[str]] = []
        self._widths: list[int] = []

    def header(self) -> list[str]:
        h = ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION"] + [name for name, _ in self.columns]
        return (["*", *h]) if self.watch else h

    def add(self, node: str, r: Any, event: str | None = None) -> None:
        """One resource: printed at once when watching (``event`` is ``created``/``updated``/
        ``destroyed``), else collected until ``flush`` prints everything in node order."""
        if self.watch:
            self._emit(node, r, event)
        else:
            self._pending.append((node, r))

    def _emit(self, node: str, r: Any, event: str | None) -> None:
        md = r.metadata
        if self.format == "table":  # without the resource model (kosctl get's light resources)
            spec = _load_yaml(_spec_text(r.spec)) if self.columns else None
            row = [node, md.namespace, self.display or _display(md.type), md.id, _version(md.version)]
            row += [render(path, spec) for _, path in self.columns]
            if self.watch:
                row = [{"created": "+", "destroyed": "-"}.get(event or "", " "), *row]
                self._stream_row(row)
            else:
                self._rows.append(row)
            return
        from kos.resources.core import metadata_yaml, resource_yaml, spec_yaml

        if self.format == "yaml":
            if self._docs:
                self.out.write("---\n")
            self._docs += 1
            self.out.write(f"node: {node}\n")
            if event is not None:
                self.out.write(f"event: {event}\n")
            self.out.write(resource_yaml(r))
            self.out.flush()
            return
        doc: dict[str, Any] = {"node": node}
        if event is not None:
            doc["event"] = event
        doc["metadata"] = _plain(_load_yaml(metadata_yaml(md)))
        doc["spec"] = _plain(_load_yaml(spec_yaml(r.spec)))
        if self.format == "json":
            self.out.write(json.dumps(doc, indent=4) + "\n")
        else:
            self.out.write(render(self.jsonpath, doc) + "\n")
        self.out.flush()

    def start(self) -> None:
        """Before a watch: the table header at once (the resources may take a while)."""
        if self.format == "table" and self.watch and not self._widths:
            h = self.header()
            minimum = {"*": 1, "NODE": 15, "TYPE": 12, "ID": 20}
            self._widths = [max(len(c), minimum.get(c, 0)) for c in h]
            self._write(h)

    def _stream_row(self, row: list[str]) -> None:
        self.start()
        self._write(row)

    def _write(self, row: list[str]) -> None:
        cells = []
        for i, c in enumerate(row):
            if i < len(row) - 1:
                w = self._widths[i] if i < len(self._widths) else len(c)
                self._widths[i] = max(w, len(c))
                cells.append(c.ljust(self._widths[i]))
            else:
                cells.append(c)
        self.out.write("   ".join(cells).rstrip() + "\n")
        self.out.flush()

    def flush(self, *, failed: bool = False) -> None:
        """Print what was collected, node by node in the order given (nothing at all when every
        node failed)."""
        rank = {n: i for i, n in enumerate(self.order)}
        pending = sorted(self._pending, key=lambda p: rank.get(p[0], len(rank)))  # stable: ids stay sorted
        self._pending = []
        for node, r in pending:
            self._emit(node, r, None)
        if failed and not self._rows:
            return
        if self.format == "table" and not self.watch:
            from kos.apis.kosctl.common import table

            table([self.header(), *self._rows], self.out)
            self._rows = []


def _display(type: str) -> str:
    """``AddressStatuses.net.kos.dev`` -> ``AddressStatus`` (the RD's display type)."""
    from kos.resources.core import singular

    return singular(type.partition(".")[0])
