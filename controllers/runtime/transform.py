"""The ``transform`` helper: a one-function Controller (cosi-semantics.md 3.5). See also
``qtransform`` (the QController variant) and ``destroy``.

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

``spec_transform(name, In, Out, fn)`` is the pure 1:1 case: ``fn(in_spec)`` returns the output
spec or None (no output: an existing one is torn down and destroyed); ``in_id``/``out_id``
pin a singleton input/output (e.g. the active MachineConfig -> one EtcdConfig). Both helpers
are generic over the input and output spec types.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from kos.controllers.runtime.access import Access
from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.controller import (
    Controller,
    Input,
    InputKind,
    Output,
    OutputKind,
)
from kos.controllers.runtime.errors import SkipReconcile
from kos.resources.core import Kind, NotFoundError, Phase, Pointer, Resource, is_conflict

InS = TypeVar("InS")
OutS = TypeVar("OutS")

MapFn = Callable[[Resource[InS]], Resource[OutS] | None]
TransformFn = Callable[[Access, Resource[InS], Resource[OutS]], object]
FinalizerRemovalFn = Callable[[Access, Resource[InS]], object]
HookFn = Callable[[ControllerRuntime], object]


class TransformErrors(Exception):
    """Errors collected during one transform cycle."""

    def __init__(self, controller: str, errors: Sequence[BaseException]) -> None:
        self.errors = list(errors)
        detail = "; ".join(f"{type(e).__name__}: {e}" for e in errors)
        super().__init__(f"controller {controller!r}: {len(errors)} error(s) in transform: {detail}")


async def maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


def kind_of(spec_class: type[Any], namespace: str | None = None) -> Kind:
    """The kind of a registered spec class (namespace defaults to the RD's)."""
    d = spec_class.definition
    return Kind(d.default_namespace if namespace is None else namespace, d.type)


def default_map(out_spec: type[OutS], out_namespace: str) -> MapFn[Any, OutS]:
    def map_fn(r: Resource[Any]) -> Resource[OutS]:
        return Resource.new(out_spec(), r.metadata.id, namespace=out_namespace)

    return map_fn


class TransformController(Controller, Generic[InS, OutS]):
    def __init__(
        self,
        name: str,
        in_kind: Kind,
        out_kind: Kind,
        map_fn: MapFn[InS, OutS],
        transform_fn: TransformFn[InS, OutS],
        *,
        input_finalizers: bool = False,
        finalizer_removal: FinalizerRemovalFn[InS] | None = None,
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
            await maybe_await(self.pre_hook(rt))
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
                            await maybe_await(self.finalizer_removal(rt, inp))
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
                await rt.modify(out, bind_transform(self.transform_fn, rt, inp))
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
            await maybe_await(self.post_hook(rt))
        if errors:
            raise TransformErrors(name, errors)
        rt.reset_restart_backoff()


def bind_transform(
    fn: TransformFn[InS, OutS], rt: Access, inp: Resource[InS]
) -> Callable[[Resource[OutS]], object]:
    def apply(out: Resource[OutS]) -> object:
        return fn(rt, inp, out)

    return apply


def transform(
    name: str,
    in_spec: type[InS],
    out_spec: type[OutS],
    fn: TransformFn[InS, OutS],
    *,
    map_fn: MapFn[InS, OutS] | None = None,
    in_namespace: str | None = None,
    out_namespace: str | None = None,
    input_finalizers: bool = False,
    finalizer_removal: FinalizerRemovalFn[InS] | None = None,
    extra_inputs: Sequence[Input] = (),
    ignore_tearing_down_inputs: bool = False,
    pre_hook: HookFn | None = None,
    post_hook: HookFn | None = None,
) -> TransformController[InS, OutS]:
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


def spec_transform(
    name: str,
    in_spec: type[InS],
    out_spec: type[OutS],
    fn: Callable[[InS], OutS | None],
    *,
    in_id: str | None = None,
    out_id: str | None = None,
    in_namespace: str | None = None,
    out_namespace: str | None = None,
) -> TransformController[InS, OutS]:
    """A pure 1:1 transform: ``fn(input spec)`` is the output spec, or None for no output (an
    existing one is torn down and destroyed). ``in_id`` restricts the inputs to one id,
    ``out_id`` names the output (default: the input's id)."""
    out_kind = kind_of(out_spec, out_namespace)
    computed: dict[Pointer, OutS] = {}

    def map_fn(r: Resource[InS]) -> Resource[OutS] | None:
        if in_id is not None and r.metadata.id != in_id:
            return None
        spec = fn(r.spec)
        if spec is None:
            return None
        computed[r.pointer] = spec
        return Resource.new(out_spec(), out_id or r.metadata.id, namespace=out_kind.namespace)

    def fill(rt: Access, inp: Resource[InS], out: Resource[OutS]) -> None:
        out.spec = computed[inp.pointer]

    return transform(name, in_spec, out_spec, fill, map_fn=map_fn, in_namespace=in_namespace,
                     out_namespace=out_namespace, pre_hook=lambda rt: computed.clear())


def set_spec(spec: Any) -> Callable[[Resource[Any]], None]:
    """A modify function that gives the resource a copy of ``spec``."""

    def apply(r: Resource[Any]) -> None:
        r.spec = spec.copy()

    return apply
