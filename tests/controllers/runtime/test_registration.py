"""Registration checks (inputs, outputs exclusive vs shared, names) and the dependency graph."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kos.controllers.runtime import (
    Controller,
    ControllerRuntime,
    EdgeType,
    Input,
    InputKind,
    Output,
    OutputKind,
    RegistrationError,
    Runtime,
)
from kos.resources.core import InMemoryState

from .conformance import IntToStrController, QIntToStrController, StrToSentenceController, SumController
from .testtypes import INTS, NS, SENTENCES, STRS


class Declared(Controller):
    def __init__(self, name: str, inputs: Sequence[Input] = (), outputs: Sequence[Output] = ()) -> None:
        self.name = name
        self._inputs = inputs
        self._outputs = outputs

    def inputs(self) -> Sequence[Input]:
        return self._inputs

    def outputs(self) -> Sequence[Output]:
        return self._outputs

    async def run(self, rt: ControllerRuntime) -> None:
        await rt.wait()


def runtime() -> Runtime:
    return Runtime(InMemoryState())


def test_exclusive_output_has_one_controller() -> None:
    rt = runtime()
    rt.register(Declared("a", outputs=[Output(STRS.type, OutputKind.EXCLUSIVE)]))
    with pytest.raises(RegistrationError, match=r"'b'.*StrResources.*conflicts with controller 'a'"):
        rt.register(Declared("b", outputs=[Output(STRS.type, OutputKind.EXCLUSIVE)]))
    with pytest.raises(RegistrationError, match="exclusive"):
        rt.register(Declared("c", outputs=[Output(STRS.type, OutputKind.SHARED)]))


def test_shared_output_many_controllers_but_never_exclusive() -> None:
    rt = runtime()
    rt.register(Declared("a", outputs=[Output(INTS.type, OutputKind.SHARED)]))
    rt.register(Declared("b", outputs=[Output(INTS.type, OutputKind.SHARED)]))
    with pytest.raises(RegistrationError, match="conflicts with controller 'a'"):
        rt.register(Declared("c", outputs=[Output(INTS.type, OutputKind.EXCLUSIVE)]))


def test_bad_declarations() -> None:
    rt = runtime()
    rt.register(Declared("a"))
    with pytest.raises(RegistrationError, match="'a' is already registered"):
        rt.register(Declared("a"))
    with pytest.raises(RegistrationError, match="duplicate input"):
        rt.register(Declared("d", inputs=[Input(NS, INTS.type), Input(NS, INTS.type, None, InputKind.STRONG)]))
    with pytest.raises(RegistrationError, match="kind q_primary not allowed"):
        rt.register(Declared("q", inputs=[Input(NS, INTS.type, None, InputKind.Q_PRIMARY)]))
    with pytest.raises(RegistrationError, match="namespace and type must not be empty"):
        rt.register(Declared("e", inputs=[Input("", INTS.type)]))
    with pytest.raises(RegistrationError, match="name must be a non-empty string"):
        rt.register(Declared(""))
    with pytest.raises(RegistrationError, match="duplicate output"):
        rt.register(Declared("o", outputs=[Output(STRS.type), Output(STRS.type)]))
    # a failed registration leaves nothing behind: the names can be used again
    rt.register(Declared("d", inputs=[Input(NS, INTS.type)]))
    assert sorted(rt.metrics()) == ["a", "d"]


def test_same_id_in_different_inputs_is_fine() -> None:
    rt = runtime()
    rt.register(Declared("x", inputs=[Input(NS, INTS.type, "a"), Input(NS, INTS.type, "b"), Input(NS, INTS.type)]))
    assert [i.id for i in rt.db.inputs("x")] == [None, "a", "b"]  # sorted by (ns, type, id, kind)


def test_dependency_graph_and_dot() -> None:
    rt = runtime()
    rt.register(IntToStrController())
    rt.register(StrToSentenceController())
    rt.register(SumController("source", "target", "sum"))
    rt.register(Declared("Reader", [Input(NS, SENTENCES.type, "x")]))
    edges = {(e.controller, e.namespace, e.type, e.id, e.edge_type) for e in rt.dependency_graph()}
    assert ("IntToStrController", NS, INTS.type, None, EdgeType.INPUT_WEAK) in edges
    assert ("IntToStrController", "", STRS.type, None, EdgeType.OUTPUT_EXCLUSIVE) in edges
    assert ("StrToSentenceController", NS, STRS.type, None, EdgeType.INPUT_STRONG) in edges
    assert ("StrToSentenceController", NS, SENTENCES.type, None, EdgeType.INPUT_DESTROY_READY) in edges
    assert ("SumController", "", INTS.type, None, EdgeType.OUTPUT_SHARED) in edges
    assert ("Reader", NS, SENTENCES.type, "x", EdgeType.INPUT_WEAK) in edges
    assert len(edges) == 9
    dot = rt.dependency_dot()
    assert dot.startswith("digraph controllers {") and dot.rstrip().endswith("}")
    assert f'"ctrl:IntToStrController" -> "type:{STRS.type}" [style=solid];' in dot
    assert f'"type:{STRS.type}" -> "ctrl:StrToSentenceController" [style=solid, label="strong"];' in dot
    assert 'label="weak id=x"' in dot


def test_qcontroller_registration_validates_inputs() -> None:
    rt = runtime()
    rt.register(QIntToStrController())
    edges = {(e.controller, e.edge_type) for e in rt.dependency_graph()}
    assert ("QIntToStrController", EdgeType.INPUT_Q_PRIMARY) in edges
    assert ("QIntToStrController", EdgeType.INPUT_Q_MAPPED_DESTROY_READY) in edges
    bad = QIntToStrController(concurrency=0)
    bad.name = "Bad"
    with pytest.raises(RegistrationError, match="'Bad': concurrency must be >= 1, got 0"):
        rt.register(bad)
    assert "Bad" not in rt.metrics()


def test_runtime_rejects_bad_backoff() -> None:
    with pytest.raises(ValueError, match="initial interval must be positive, got 0"):
        Runtime(InMemoryState(), backoff_initial=0)
    with pytest.raises(ValueError, match=r"maximum 0\.1 must be >= initial interval 0\.5"):
        Runtime(InMemoryState(), backoff_max=0.1)
