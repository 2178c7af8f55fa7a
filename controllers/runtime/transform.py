"""One-function controllers: ``transform`` (Controller), ``qtransform`` (QController) and
``destroy`` (cosi-semantics.md 3.5).

``transform(name, In, Out, fn)`` keeps one ``Out`` resource per ``In`` resource: ``map_fn``
turns an input into the (empty) output to write (default: same id, default spec, Out's
namespace), ``fn(rt, in, out)`` fills the output's spec (sync or async). Each cycle:

1. for every input: tearing-down inputs are skipped (with ``input_finalizers``, their
   ``finalizer_removal`` runs and our finalizer is removed once the output is gone); other
   inputs get our finalizer (if enabled) and ``modify(out, fn)``; conflicts on Out and
   ``SkipReconcile`` are ignored, other errors collected;
2. every owned output that was not written this cycle, or is tearing down, is torn down and
   destroyed once it has no finalizers;
3. input finalizers whose output is gone are removed;
4. collected errors raise (the runtime restarts the controller with backoff), otherwise
   the restart backoff is reset.

The finalizer name is the controller name.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kos.controllers.runtime.access import Access
from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.controller import (
    Controller,
    Input,
    InputKind,
    Output,
    OutputKind,
    QController,
    QSettings,
    ReducedMetadata,
)
from kos.controllers.runtime.errors import DestroyOutput, SkipReconcile
from kos.controllers.runtime.qruntime import QRuntime
from kos.resources.core.errors import NotFoundError, PhaseConflictError, is_conflict
from kos.resources.core.metadata import Kind, Phase, Pointer
from kos.resources.core.resource import Resource

MapFn = Callable[[Resource[Any]], Resource[Any] | None]
TransformFn = Callable[[Any, Resource[Any], Resource[Any]], object]
FinalizerRemovalFn = Callable[[Any, Resource[Any]], object]
HookFn = Callable[[ControllerRuntime], object]


class TransformErrors(Exception):
    """Errors collected during one transform cycle."""

    def __init__(self, controller: str, errors: Sequence[BaseException]) -> None:
        self.errors = list(errors)
        detail = "; ".join(f"{type(e).__name__}: {e}" for e in errors)
        super().__init__(f"controller {controller!r}: {len(errors)} error(s) in transform: {detail}")


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


def kind_of(spec_class: type[Any], namespace: str | None = None) -> Kind:
    """The kind of a registered spec class (namespace defaults to the RD's)."""
    d = spec_class.definition
    return Kind(d.default_namespace if namespace is None else namespace, d.type)


def default_map(out_spec: type[Any], out_namespace: str) -> MapFn:
    def map_fn(r: Resource[Any]) -> Resource[Any]:
        return Resource.new(out_spec(), r.metadata.id, namespace=out_namespace)

    return map_fn


class TransformController(Controller):
    def __init__(
        self,
        name: str,
        in_kind: Kind,
        out_kind: Kind,
        map_fn: MapFn,
        transform_fn: TransformFn,
        *,
        input_finalizers: bool = False,
        finalizer_removal: FinalizerRemovalFn | None = None,
        extra_inputs: Sequence[Input] = (),
        ignore_tearing_down_inputs: bool = False,
        pre_hook: HookFn | None = None,
        post_hook: HookFn | None = None,
    ) -> None:
        self.name = name
        self.in_kind = in_kind
        self.out_kind = out_kind
        self.map_fn = map_fn
        self.transform_fn = transform_fn
        self.input_finalizers = input_finalizers
        self.finalizer_removal = finalizer_removal
        self.extra_inputs = tuple(extra_inputs)
        self.ignore_tearing_down_inputs = ignore_tearing_down_inputs
        self.pre_hook = pre_hook
        self.post_hook = post_hook

    def inputs(self) -> Sequence[Input]:
        in_kind = InputKind.STRONG if self.input_finalizers else InputKind.WEAK
        return (
            Input(self.in_kind.namespace, self.in_kind.type, None, in_kind),
            Input(self.out_kind.namespace, self.out_kind.type, None, InputKind.DESTROY_READY),
            *self.extra_inputs,
        )

    def outputs(self) -> Sequence[Output]:
        return (Output(self.out_kind.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.cycle(rt)

    async def cycle(self, rt: ControllerRuntime) -> None:
        if self.pre_hook is not None:
            await _maybe_await(self.pre_hook(rt))
        name = self.name
        touched: set[Pointer] = set()
        errors: list[BaseException] = []
        finalizer_pending: list[tuple[Pointer, Pointer]] = []
        for inp in await rt.list(self.in_kind):
            out = self.map_fn(inp)
            if out is None:
                continue
            if inp.metadata.phase == Phase.TEARING_DOWN and not self.ignore_tearing_down_inputs:
                if self.input_finalizers and inp.metadata.has_finalizer(name):
                    if self.finalizer_removal is not None:
                        try:
                            await _maybe_await(self.finalizer_removal(rt, inp))
                        except SkipReconcile:
                            continue
                        except Exception as exc:
                            errors.append(exc)
                            continue
                    finalizer_pending.append((inp.pointer, out.pointer))
                continue
            touched.add(out.pointer)
            try:
                if self.input_finalizers and not inp.metadata.has_finalizer(name):
                    await rt.add_finalizer(inp.pointer, name)
                await rt.modify(out, _bind(self.transform_fn, rt, inp))
            except SkipReconcile:
                pass
            except Exception as exc:
                if not is_conflict(exc, type=self.out_kind.type):
                    errors.append(exc)
        for out in await rt.list(self.out_kind):
            md = out.metadata
            if md.owner != name or (out.pointer in touched and md.phase == Phase.RUNNING):
                continue
            try:
                if await rt.teardown(out.pointer):
                    await rt.destroy(out.pointer)
            except NotFoundError:
                pass
            except Exception as exc:
                errors.append(exc)
        for in_ptr, out_ptr in finalizer_pending:
            if await rt.get_or_none(out_ptr) is None:
                await rt.remove_finalizer(in_ptr, name)
        if self.post_hook is not None:
            await _maybe_await(self.post_hook(rt))
        if errors:
            raise TransformErrors(name, errors)
        rt.reset_restart_backoff()


def _bind(fn: TransformFn, rt: Access, inp: Resource[Any]) -> Callable[[Resource[Any]], object]:
    def apply(out: Resource[Any]) -> object:
        return fn(rt, inp, out)

    return apply


def transform(
    name: str,
    in_spec: type[Any],
    out_spec: type[Any],
    fn: TransformFn,
    *,
    map_fn: MapFn | None = None,
    in_namespace: str | None = None,
    out_namespace: str | None = None,
    input_finalizers: bool = False,
    finalizer_removal: FinalizerRemovalFn | None = None,
    extra_inputs: Sequence[Input] = (),
    ignore_tearing_down_inputs: bool = False,
    pre_hook: HookFn | None = None,
    post_hook: HookFn | None = None,
) -> TransformController:
    """A Controller keeping one ``out_spec`` resource per ``in_spec`` resource (see module doc)."""
    in_kind = kind_of(in_spec, in_namespace)
    out_kind = kind_of(out_spec, out_namespace)
    return TransformController(
        name,
        in_kind,
        out_kind,
        map_fn or default_map(out_spec, out_kind.namespace),
        fn,
        input_finalizers=input_finalizers,
        finalizer_removal=finalizer_removal,
        extra_inputs=extra_inputs,
        ignore_tearing_down_inputs=ignore_tearing_down_inputs,
        pre_hook=pre_hook,
        post_hook=post_hook,
    )


# -- qtransform --------------------------------------------------------------------------

UnmapFn = Callable[[Pointer], Pointer | None]
ExtraMapFn = Callable[[QRuntime, ReducedMetadata], Awaitable[Sequence[Pointer]]]


class QTransformController(QController):
    """Per-key transform: In is QPrimary (our finalizer on it), Out is QMappedDestroyReady."""

    def __init__(
        self,
        name: str,
        in_kind: Kind,
        out_kind: Kind,
        map_fn: MapFn,
        unmap_fn: UnmapFn,
        transform_fn: TransformFn,
        *,
        finalizer_removal: FinalizerRemovalFn | None = None,
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
                await rt.modify(out, _bind(self.transform_fn, rt, inp))
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
            await _maybe_await(self.finalizer_removal(rt, inp))
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
    fn: TransformFn,
    *,
    map_fn: MapFn | None = None,
    unmap_fn: UnmapFn | None = None,
    in_namespace: str | None = None,
    out_namespace: str | None = None,
    finalizer_removal: FinalizerRemovalFn | None = None,
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


# -- destroy -----------------------------------------------------------------------------


class DestroyController(QController):
    """Destroys resources of one kind that are tearingDown, unowned and finalizer-free."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.name = f"Destroy[{kind.type}]"

    def settings(self) -> QSettings:
        return QSettings(
            inputs=(Input(self.kind.namespace, self.kind.type, None, InputKind.Q_PRIMARY),),
            outputs=(Output(self.kind.type, OutputKind.SHARED),),
        )

    async def reconcile(self, rt: QRuntime, ptr: Pointer) -> None:
        r = await rt.get_or_none(ptr)
        if r is None:
            return
        md = r.metadata
        if md.phase == Phase.TEARING_DOWN and not md.owner and not md.finalizers:
            try:
                await rt.destroy(ptr, owner="")
            except NotFoundError:
                pass


def destroy(spec: type[Any], namespace: str | None = None) -> DestroyController:
    """The ``Destroy[<type>]`` controller for a registered spec class."""
    return DestroyController(kind_of(spec, namespace))
