"""``ApplyController``: the shape every system apply controller shares.

Each cycle: every running spec is applied (``apply(id, spec, old_status) -> status``, a
coroutine doing its blocking I/O in a worker thread) and its status (same id) written; every
status this controller owns whose spec is gone is undone (``undo(id, status)``: restore a
default, delete a file) and destroyed. An error applying one spec becomes that spec's status
(the subclass returns a ``failed`` status) rather than stopping the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind, kind_of
from kos.resources.core import Phase, Resource


class ApplyController(Controller):
    spec_type: type[Any]
    status_type: type[Any]

    def inputs(self) -> Sequence[Input]:
        k = kind_of(self.spec_type)
        return (Input(k.namespace, k.type, None, InputKind.WEAK),)

    def outputs(self) -> Sequence[Output]:
        return (Output(kind_of(self.status_type).type, OutputKind.EXCLUSIVE),)

    async def apply(self, rt: ControllerRuntime, id_: str, spec: Any, old: Any | None) -> Any:
        raise NotImplementedError

    async def undo(self, rt: ControllerRuntime, id_: str, status: Any) -> None:
        """Undo what ``apply`` did for a spec that is gone (default: nothing)."""

    async def run(self, rt: ControllerRuntime) -> None:
        spec_kind, status_kind = kind_of(self.spec_type), kind_of(self.status_type)
        async for _ in rt.events():
            specs = {r.metadata.id: r.spec for r in await rt.list(spec_kind) if r.metadata.phase == Phase.RUNNING}
            statuses = {r.metadata.id: r for r in await rt.list(status_kind)}
            for id_, spec in specs.items():
                old = statuses.get(id_)
                status = await self.apply(rt, id_, spec, old.spec if old is not None else None)

                def fill(r: Resource[Any], s: Any = status) -> None:
                    r.spec = s

                await rt.modify(Resource.new(self.status_type(), id_, namespace=status_kind.namespace), fill)
            for id_, r in statuses.items():
                if id_ in specs or r.metadata.owner != self.name:
                    continue
                await self.undo(rt, id_, r.spec)
                await rt.destroy(r.pointer)
            rt.reset_restart_backoff()
