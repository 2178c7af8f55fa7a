"""The dependency database: which controller reads which kinds and writes which types.

It answers the delivery question (which controllers does a change of (ns, type, id)
concern?) from an index by kind, enforces the exclusive/shared output rule at registration,
and renders the whole graph as edges or a Graphviz dot document.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from kos.controllers.runtime.controller import Input, InputKind, Output, OutputKind
from kos.controllers.runtime.errors import RegistrationError
from kos.resources.core import Kind


class EdgeType(enum.IntEnum):
    OUTPUT_EXCLUSIVE = 0
    OUTPUT_SHARED = 1
    INPUT_WEAK = 2
    INPUT_STRONG = 3
    INPUT_DESTROY_READY = 4
    INPUT_Q_PRIMARY = 5
    INPUT_Q_MAPPED = 6
    INPUT_Q_MAPPED_DESTROY_READY = 7

    def __str__(self) -> str:
        return self.name.lower()


_INPUT_EDGE = {k: EdgeType(EdgeType.INPUT_WEAK + int(k)) for k in InputKind}
_OUTPUT_EDGE = {OutputKind.EXCLUSIVE: EdgeType.OUTPUT_EXCLUSIVE, OutputKind.SHARED: EdgeType.OUTPUT_SHARED}
_DOT_STYLE = {
    EdgeType.OUTPUT_EXCLUSIVE: "solid",
    EdgeType.OUTPUT_SHARED: "dashed",
    EdgeType.INPUT_WEAK: "dashed",
    EdgeType.INPUT_STRONG: "solid",
    EdgeType.INPUT_DESTROY_READY: "dotted",
    EdgeType.INPUT_Q_PRIMARY: "bold",
    EdgeType.INPUT_Q_MAPPED: "dashed",
    EdgeType.INPUT_Q_MAPPED_DESTROY_READY: "dotted",
}


@dataclass(frozen=True, slots=True)
class Edge:
    """One dependency: controller -> output type (namespace ""), or input kind/id -> controller."""

    controller: str
    namespace: str
    type: str
    id: str | None
    edge_type: EdgeType


class DependencyDB:
    def __init__(self) -> None:
        self._inputs: dict[str, tuple[Input, ...]] = {}
        self._outputs: dict[str, tuple[Output, ...]] = {}
        self._by_kind: dict[Kind, list[tuple[str, Input]]] = {}
        self._writers: dict[str, list[tuple[str, OutputKind]]] = {}

    # -- registration ---------------------------------------------------------------------
    def add_controller(self, name: str, inputs: Sequence[Input], outputs: Sequence[Output]) -> None:
        if name in self._inputs:
            raise RegistrationError(f"controller {name!r} is already registered")
        seen: set[str] = set()
        for out in outputs:
            if not isinstance(out, Output) or not out.type:
                raise RegistrationError(f"controller {name!r}: output {out!r} must be an Output with a type")
            if out.type in seen:
                raise RegistrationError(f"controller {name!r}: duplicate output {out.type}")
            seen.add(out.type)
            for other, kind in self._writers.get(out.type, ()):
                if out.kind == OutputKind.EXCLUSIVE or kind == OutputKind.EXCLUSIVE:
                    raise RegistrationError(
                        f"controller {name!r}: output {out.type} ({out.kind}) conflicts with controller "
                        f"{other!r} which declares it {kind}; an exclusive output has exactly one controller"
                    )
        self._outputs[name] = tuple(outputs)
        for out in outputs:
            self._writers.setdefault(out.type, []).append((name, out.kind))
        self._inputs[name] = ()
        self.set_inputs(name, inputs)

    def set_inputs(self, name: str, inputs: Sequence[Input]) -> None:
        """Replace a controller's inputs (already validated and sorted)."""
        for inp in self._inputs[name]:
            entries = self._by_kind[inp.resource_kind]
            entries.remove((name, inp))
            if not entries:
                del self._by_kind[inp.resource_kind]
        self._inputs[name] = tuple(inputs)
        for inp in inputs:
            self._by_kind.setdefault(inp.resource_kind, []).append((name, inp))

    # -- queries --------------------------------------------------------------------------
    def inputs(self, name: str) -> tuple[Input, ...]:
        return self._inputs[name]

    def outputs(self, name: str) -> tuple[Output, ...]:
        return self._outputs[name]

    def kinds(self) -> list[Kind]:
        """Every kind some controller has as input."""
        return sorted(self._by_kind)

    def dependents(self, kind: Kind, id: str) -> list[tuple[str, Input]]:
        """Controllers (and the matching input) with a wildcard or this-id input on the kind."""
        entries = self._by_kind.get(kind)
        if not entries:
            return []
        return [(n, i) for n, i in entries if i.id is None or i.id == id]

    def edges(self) -> list[Edge]:
        out: list[Edge] = []
        for name in sorted(self._inputs):
            for inp in self._inputs[name]:
                out.append(Edge(name, inp.namespace, inp.type, inp.id, _INPUT_EDGE[inp.kind]))
            for o in self._outputs[name]:
                out.append(Edge(name, "", o.type, None, _OUTPUT_EDGE[o.kind]))
        return out

    def dot(self) -> str:
        """The graph in Graphviz dot: boxes are controllers, ellipses resource types."""
        lines = ["digraph controllers {", "  rankdir=LR;"]
        types = sorted({e.type for e in self.edges()})
        for t in types:
            lines.append(f'  "type:{t}" [label="{t}", shape=ellipse];')
        for name in sorted(self._inputs):
            lines.append(f'  "ctrl:{_escape(name)}" [label="{_escape(name)}", shape=box];')
        for e in self.edges():
            style = _DOT_STYLE[e.edge_type]
            if e.edge_type in (EdgeType.OUTPUT_EXCLUSIVE, EdgeType.OUTPUT_SHARED):
                lines.append(f'  "ctrl:{_escape(e.controller)}" -> "type:{e.type}" [style={style}];')
            else:
                label = str(e.edge_type).removeprefix("input_") + (f" id={e.id}" if e.id is not None else "")
                lines.append(
                    f'  "type:{e.type}" -> "ctrl:{_escape(e.controller)}" [style={style}, label="{_escape(label)}"];'
                )
        lines.append("}")
        return "\n".join(lines) + "\n"


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')
