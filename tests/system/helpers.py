"""Test helpers: a runtime with some system controllers on an in-memory state, and storing a
machine config as the active MachineConfig."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio

from kos.controllers.runtime import Controller, Runtime
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import InMemoryState, Pointer, Resource

BASE = """version: v1alpha1
machine:
  type: worker
  token: abcdef.0123456789abcdef
{machine}
cluster:
  controlPlane: {{endpoint: "https://10.5.0.2:6443"}}
  clusterName: t
"""


def machine_config(machine: str) -> str:
    """A worker config whose ``machine:`` section gets ``machine`` (indented two spaces)."""
    return BASE.format(machine="\n".join("  " + ln for ln in machine.strip("\n").splitlines()))


async def set_config(state: InMemoryState, text: str | None) -> None:
    p = Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID)
    cur = await state.get_or_none(p)
    if text is None:
        if cur is not None:
            await state.destroy(p)
    elif cur is None:
        await state.create(Resource.new(MachineConfigSpec(config=text), ACTIVE_ID, namespace=CONFIG_NS))
    else:
        cur.spec = MachineConfigSpec(config=text)
        await state.update(cur)


@asynccontextmanager
async def running(controllers: Sequence[Controller]) -> AsyncIterator[InMemoryState]:
    state = InMemoryState(history_max=4096)
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    for c in controllers:
        runtime.register(c)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()
