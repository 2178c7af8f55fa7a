"""``spec_transform_many``: the typed 1:N transform (one input resource -> N outputs by id).

``spec_transform_many(name, In, Out, fn, in_id=...)`` keeps, for the input ``In(in_id)``, one
``Out`` resource per entry of ``fn(input spec)`` (``{output id: output spec}``). Outputs the
function no longer returns, and all of them when the input is gone or tearing down, are torn
down and destroyed once no other controller holds a finalizer on them (the Out kind is a
``DESTROY_READY`` input, so the controller wakes when that happens). An exception listed in
``keep_on`` (e.g. a config the render refuses) is logged and leaves the outputs as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic

from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.controller import Controller, Input, InputKind, Output, OutputKind
from kos.controllers.runtime.transform import InS, OutS, kind_of, set_spec
from kos.resources.core import Kind, NotFoundError, Phase, Pointer, Resource


class SpecsTransformController(Controller, Generic[InS, OutS]):
    def __init__(self, name: str, in_kind: Kind, in_id: str, out_spec: type[OutS], out_kind: Kind,
                 fn: Callable[[InS], Mapping[str, OutS]], keep_on: tuple[type[BaseException], ...] = (),
                 keep_message: str = "cannot compute the outputs, keeping the previous ones") -> None:
        self.name = name
        self.in_ptr = Pointer(in_kind.namespace, in_kind.type, in_id)
        self.out_spec = out_spec
        self.out_kind = out_kind
        self.fn = fn
        self.keep_on = keep_on
        self.keep_message = keep_message

    def inputs(self) -> Sequence[Input]:
        return (Input(self.in_ptr.namespace, self.in_ptr.type, self.in_ptr.id),
                Input(self.out_kind.namespace, self.out_kind.type, None, InputKind.DESTROY_READY))

    def outputs(self) -> Sequence[Output]:
        return (Output(self.out_kind.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.cycle(rt)

    async def cycle(self, rt: ControllerRuntime) -> None:
        r = await rt.get_or_none(self.in_ptr)
        wanted: Mapping[str, OutS] = {}
        if r is not None and r.metadata.phase == Phase.RUNNING:
            try:
                wanted = self.fn(r.spec)
            except self.keep_on as exc:
                rt.logger.error(self.keep_message, error=str(exc))
                rt.reset_restart_backoff()
                return
        for id_, spec in wanted.items():
            await rt.modify(Resource.new(self.out_spec(), id_, namespace=self.out_kind.namespace), set_spec(spec))
        for out in await rt.list(self.out_kind):
            if out.metadata.owner != self.name or (out.metadata.id in wanted and out.metadata.phase == Phase.RUNNING):
                continue
            try:
                if await rt.teardown(out.pointer):
                    await rt.destroy(out.pointer)
            except NotFoundError:
                pass
        rt.reset_restart_backoff()


def spec_transform_many(
    name: str,
    in_spec: type[InS],
    out_spec: type[OutS],
    fn: Callable[[InS], Mapping[str, OutS]],
    *,
    in_id: str,
    in_namespace: str | None = None,
    out_namespace: str | None = None,
    keep_on: tuple[type[BaseException], ...] = (),
    keep_message: str = "cannot compute the outputs, keeping the previous ones",
) -> SpecsTransformController[InS, OutS]:
    """The 1:N transform of one input resource (see module doc)."""
    return SpecsTransformController(name, kind_of(in_spec, in_namespace), in_id, out_spec,
                                    kind_of(out_spec, out_namespace), fn, keep_on, keep_message)
