"""Run by test_kernel under ``unshare --uts``: HostnameController sets the kernel hostname."""

from __future__ import annotations

import socket

import anyio

from kos.controllers.network.hostname import HostnameController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.resources.core import InMemoryState, Resource
from kos.resources.network import HOSTNAME_STATUSES, NAMESPACE, HostnameSpecSpec


async def main() -> None:
    state = InMemoryState()
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    runtime.register(HostnameController(manage=True))
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        await state.create(Resource.new(HostnameSpecSpec(hostname="kos-uts-test"), "hostname", namespace=NAMESPACE))
        await assert_resources(state, HOSTNAME_STATUSES, ["hostname"], lambda r: r.spec.hostname == "kos-uts-test")
        tg.cancel_scope.cancel()
    print(socket.gethostname())


anyio.run(main)
