"""The ``qtransform`` helper: a one-function QController keeping one output per input key.

In is a QPrimary input (our finalizer is put on every running input), Out is a
QMappedDestroyReady input mapped back to its input (``unmap_fn``, default: same id). For a
running input: a destroy-ready leftover output is destroyed first, then ``modify(out, fn)``
(``DestroyOutput`` from ``fn`` removes the output instead). For a tearing-down input:
``finalizer_removal`` runs, the output is torn down and destroyed once ready, and our
finalizer comes off the input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kos.controllers.runtime.controller import (
    Input,
    InputKind,
    Output,
    OutputKind,
    QController,
    QSettings,
    ReducedMetadata,
)
from kos.controllers.runtime.errors import DestroyOutput
from kos.controllers.runtime.qruntime import QRuntime
from kos.controllers.runtime.transform import (
    FinalizerRemovalFn,
    MapFn,
    TransformFn,
    bind_transform,
    default_map,
    kind_of,
    maybe_await,
)
from kos.resources.core import Kind, NotFoundError, Phase, PhaseConflictError, Pointer, Resource

UnmapFn = Callable[[Pointer], Pointer | None]
ExtraMapFn = Callable[[QRuntime, ReducedMetadata], Awaitable[Sequence[Pointer]]]


class QTransformController(QController):
    """Per-key transform: In is QPrimary (our finalizer on it), Out is QMappedDestroyReady."""

    def __init__(
        self,
        name: str,
        in_kind: Kind,
        out_kind: Kind,
        map_fn: MapFn[Any, Any],
        unmap_fn: UnmapFn,
        transform_fn: TransformFn[Any, Any],
        *,
        finalizer_removal: FinalizerRemovalFn[Any] | None = None,
        extra_inputs: Sequence[Input] = (),
        map_extra: ExtraMapFn | None = None,
        ignore_teardown_while: Callable[[Resource[Any]], bool] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.name = name
        self.in_kind = in_kind
        self.out_kind = out_kind
        self.map_fn = map_fn
        self.unmap_fn = unmap_fn
        self.transform_fn = transform_fn
        self.finalizer_removal = finalizer_removal
        self.extra_inputs = tuple(extra_inputs)
        self.map_extra = map_extra
        self.ignore_teardown_while = ignore_teardown_while
        self.concurrency = concurrency

    def settings(self) -> QSettings:
        return QSettings(
            inputs=(
                Input(self.in_kind.namespace, self.in_kind.type, None, InputKind.Q_PRIMARY),
                Input(self.out_kind.namespace, self.out_kind.type, None, InputKind.Q_MAPPED_DESTROY_READY),
                *self.extra_inputs,
            ),
            outputs=(Output(self.out_kind.type, OutputKind.EXCLUSIVE),),
            concurrency=self.concurrency,
        )

    async def map_input(self, rt: QRuntime, reduced: ReducedMetadata) -> Sequence[Pointer]:
        if reduced.type == self.out_kind.type and reduced.namespace == self.out_kind.namespace:
            p = self.unmap_fn(reduced.pointer)
            return [] if p is None else [p]
        if self.map_extra is not None:
            return await self.map_extra(rt, reduced)
        return [r.pointer for r in await rt.list(self.in_kind)]

    async def reconcile(self, rt: QRuntime, ptr: Pointer) -> None:
        inp = await rt.get_or_none(ptr)
        if inp is None:
            return
        out = self.map_fn(inp)
        if out is None:
            return
        fin = self.name
        tearing = inp.metadata.phase == Phase.TEARING_DOWN
        if tearing and self.ignore_teardown_while is not None and self.ignore_teardown_while(inp):
            tearing = False
        if not tearing:
            if not inp.metadata.has_finalizer(fin):
                await rt.add_finalizer(ptr, fin)
            current = await rt.get_or_none(out.pointer)
            if current is not None and current.metadata.phase == Phase.TEARING_DOWN:
                if current.metadata.finalizers:
                    return  # re-queued through the QMappedDestroyReady input
                await rt.destroy(out.pointer)
            try:
                await rt.modify(out, bind_transform(self.transform_fn, rt, inp))
            except PhaseConflictError:
                pass
            except DestroyOutput:
                try:
                    if await rt.teardown(out.pointer):
                        await rt.destroy(out.pointer)
                except NotFoundError:
                    pass
            return
        if self.finalizer_removal is not None:
            await maybe_await(self.finalizer_removal(rt, inp))
        try:
            ready = await rt.teardown(out.pointer)
        except NotFoundError:
            await rt.remove_finalizer(ptr, fin)
            return
        if not ready:
            return
        await rt.destroy(out.pointer)
        await rt.remove_finalizer(ptr, fin)


def qtransform(
    name: str,
    in_spec: type[Any],
    out_spec: type[Any],
    fn: TransformFn[Any, Any],
    *,
    map_fn: MapFn[Any, Any] | None = None,
    unmap_fn: UnmapFn | None = None,
    in_namespace: str | None = None,
    out_namespace: str | None = None,
    finalizer_removal: FinalizerRemovalFn[Any] | None = None,
    extra_inputs: Sequence[Input] = (),
    map_extra: ExtraMapFn | None = None,
    ignore_teardown_while: Callable[[Resource[Any]], bool] | None = None,
    concurrency: int = 1,
) -> QTransformController:
    """A QController keeping one ``out_spec`` per ``in_spec`` resource; by default same ids."""
    in_kind = kind_of(in_spec, in_namespace)
    out_kind = kind_of(out_spec, out_namespace)

    def same_id(p: Pointer) -> Pointer:
        return in_kind.pointer(p.id)

    return QTransformController(
        name,
        in_kind,
        out_kind,
        map_fn or default_map(out_spec, out_kind.namespace),
        unmap_fn or same_id,
        fn,
        finalizer_removal=finalizer_removal,
        extra_inputs=extra_inputs,
        map_extra=map_extra,
        ignore_teardown_while=ignore_teardown_while,
        concurrency=concurrency,
    )
