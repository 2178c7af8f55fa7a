"""COSI conformance-style controllers (runtime:pkg/controller/conformance), written by hand
against the kos runtime: IntToStr, StrToSentence, Sum, Failing, Panicking and a QController."""

from __future__ import annotations

from collections.abc import Sequence

from kos.controllers.runtime import (
    Controller,
    ControllerRuntime,
    Input,
    InputKind,
    Output,
    OutputKind,
    QController,
    QRuntime,
    QSettings,
    ReducedMetadata,
)
from kos.resources.core import NotFoundError, Phase, Pointer, Resource

from .testtypes import INTS, NS, SENTENCES, STRS, IntSpec, SentenceSpec, StrSpec


class IntToStrController(Controller):
    """Every IntResource -> a StrResource with the decimal value; orphans torn down, then destroyed
    once other controllers' finalizers are gone (a DestroyReady input re-triggers it)."""

    name = "IntToStrController"

    def __init__(self, ns: str = NS) -> None:
        self.ns = ns

    def inputs(self) -> Sequence[Input]:
        return [
            Input(self.ns, INTS.type, None, InputKind.WEAK),
            Input(self.ns, STRS.type, None, InputKind.DESTROY_READY),
        ]

    def outputs(self) -> Sequence[Output]:
        return [Output(STRS.type, OutputKind.EXCLUSIVE)]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            wanted: set[str] = set()
            for r in await rt.list(INTS._replace(namespace=self.ns)):
                if r.metadata.phase != Phase.RUNNING:
                    continue
                wanted.add(r.id)
                value = str(r.spec.value)

                def set_value(s: Resource[StrSpec], v: str = value) -> None:
                    s.spec.value = v

                await rt.modify(Resource.new(StrSpec(), r.id, namespace=self.ns), set_value)
            for s in await rt.list(STRS._replace(namespace=self.ns)):
                if s.metadata.owner == self.name and s.id not in wanted and await rt.teardown(s.pointer):
                    await rt.destroy(s.pointer)


class StrToSentenceController(Controller):
    """StrResource -> SentenceResource "<value> sentence", holding a finalizer on each string."""

    name = "StrToSentenceController"

    def inputs(self) -> Sequence[Input]:
        return [
            Input(NS, SENTENCES.type, None, InputKind.DESTROY_READY),
            Input(NS, STRS.type, None, InputKind.STRONG),
        ]

    def outputs(self) -> Sequence[Output]:
        return [Output(SENTENCES.type, OutputKind.EXCLUSIVE)]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            for s in await rt.list(STRS):
                sentence = Resource.new(SentenceSpec(), s.id)
                if s.metadata.phase == Phase.TEARING_DOWN:
                    try:
                        ready = await rt.teardown(sentence.pointer)
                    except NotFoundError:
                        ready = True
                    else:
                        if ready:
                            await rt.destroy(sentence.pointer)
                    if ready:
                        await rt.remove_finalizer(s.pointer, self.name)
                    continue
                await rt.add_finalizer(s.pointer, self.name)
                text = f"{s.spec.value} sentence"

                def set_text(r: Resource[SentenceSpec], t: str = text) -> None:
                    r.spec.value = t

                await rt.modify(sentence, set_text)


class SumController(Controller):
    """Sum of the IntResources in ``source`` -> IntResource ``target_id`` in ``target``."""

    def __init__(self, source: str, target: str, target_id: str, name: str = "SumController") -> None:
        self.name = name
        self.source = source
        self.target = target
        self.target_id = target_id

    def inputs(self) -> Sequence[Input]:
        return [Input(self.source, INTS.type, None, InputKind.WEAK)]

    def outputs(self) -> Sequence[Output]:
        return [Output(INTS.type, OutputKind.SHARED)]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            total = sum(r.spec.value for r in await rt.list(INTS._replace(namespace=self.source)))

            def set_sum(r: Resource[IntSpec], v: int = total) -> None:
                r.spec.value = v

            await rt.modify(Resource.new(IntSpec(), self.target_id, namespace=self.target), set_sum)


class FailingController(Controller):
    """Writes an IntResource counting its runs, then fails: a crash every time."""

    def __init__(self, ns: str, name: str = "FailingController") -> None:
        self.name = name
        self.ns = ns
        self.runs = 0

    def inputs(self) -> Sequence[Input]:
        return []

    def outputs(self) -> Sequence[Output]:
        return [Output(INTS.type, OutputKind.SHARED)]

    async def run(self, rt: ControllerRuntime) -> None:
        await rt.wait()
        self.runs += 1
        runs = self.runs

        def set_runs(r: Resource[IntSpec]) -> None:
            r.spec.value = runs

        await rt.modify(Resource.new(IntSpec(), "count", namespace=self.ns), set_runs)
        raise RuntimeError(f"failing on purpose (run {runs})")


class PanickingController(Controller):
    """Crashes with an unexpected exception on its first run, then works (writes ``ok``)."""

    def __init__(self, ns: str, name: str = "PanickingController") -> None:
        self.name = name
        self.ns = ns
        self.panicked = False

    def inputs(self) -> Sequence[Input]:
        return []

    def outputs(self) -> Sequence[Output]:
        return [Output(INTS.type, OutputKind.SHARED)]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            if not self.panicked:
                self.panicked = True
                _ = {}["no such key"]  # an unexpected KeyError: the Go conformance test panics here
            await rt.modify(Resource.new(IntSpec(), "ok", namespace=self.ns), lambda r: None)


class QIntToStrController(QController):
    """QController variant of IntToStr: QPrimary ints, QMappedDestroyReady strings."""

    name = "QIntToStrController"

    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = concurrency
        self.reconciled: list[str] = []

    def settings(self) -> QSettings:
        return QSettings(
            inputs=[
                Input(NS, INTS.type, None, InputKind.Q_PRIMARY),
                Input(NS, STRS.type, None, InputKind.Q_MAPPED_DESTROY_READY),
            ],
            outputs=[Output(STRS.type, OutputKind.EXCLUSIVE)],
            concurrency=self.concurrency,
        )

    async def map_input(self, rt: QRuntime, reduced: ReducedMetadata) -> Sequence[Pointer]:
        return [INTS.pointer(reduced.id)]

    async def reconcile(self, rt: QRuntime, ptr: Pointer) -> None:
        self.reconciled.append(ptr.id)
        out = Resource.new(StrSpec(), ptr.id)
        r = await rt.get_or_none(ptr)
        if r is None or r.metadata.phase == Phase.TEARING_DOWN:
            try:
                if await rt.teardown(out.pointer):
                    await rt.destroy(out.pointer)
                    await rt.remove_finalizer(ptr, self.name)
            except NotFoundError:
                await rt.remove_finalizer(ptr, self.name)
            return
        await rt.add_finalizer(ptr, self.name)
        value = str(r.spec.value)

        def set_value(s: Resource[StrSpec]) -> None:
            s.spec.value = value

        await rt.modify(out, set_value)
