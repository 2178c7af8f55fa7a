"""The ``destroy`` helper: ``Destroy[<type>]`` destroys resources of one kind that are tearing
down, unowned and finalizer-free (user-created resources other controllers finalize)."""

from __future__ import annotations

from typing import Any

from kos.controllers.runtime.controller import Input, InputKind, Output, OutputKind, QController, QSettings
from kos.controllers.runtime.qruntime import QRuntime
from kos.controllers.runtime.transform import kind_of
from kos.resources.core import Kind, NotFoundError, Phase, Pointer


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
