"""Merged ``HostnameSpecs/hostname`` -> the UTS host name and ``HostnameStatuses/hostname``.

With ``manage=True`` the name is set with ``sethostname`` in machined's UTS namespace (the
node's); with ``manage=False`` (a namespace node sharing someone else's UTS namespace) it is
only reported. ``set_hostname`` can be injected (tests run it in a child with its own UTS
namespace).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind
from kos.resources.core import Pointer, Resource
from kos.resources.network import HOSTNAME_SPECS, HOSTNAME_STATUSES, NAMESPACE, HostnameStatusSpec


def _sethostname(name: str) -> None:
    from kos.platform.linux.syscalls import sethostname

    sethostname(name)


class HostnameController(Controller):
    name = "network.HostnameController"

    def __init__(self, *, manage: bool = True, set_hostname: Callable[[str], None] | None = None) -> None:
        self.manage = manage
        self.set_hostname = set_hostname or _sethostname
        self._applied = ""

    def inputs(self) -> Sequence[Input]:
        return (Input(HOSTNAME_SPECS.namespace, HOSTNAME_SPECS.type, "hostname"),)

    def outputs(self) -> Sequence[Output]:
        return (Output(HOSTNAME_STATUSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            spec = await rt.get_or_none(Pointer(HOSTNAME_SPECS.namespace, HOSTNAME_SPECS.type, "hostname"))
            if spec is None or not spec.spec.hostname:
                continue
            host, domain = spec.spec.hostname, spec.spec.domainname
            if self.manage and host != self._applied:
                await anyio.to_thread.run_sync(self.set_hostname, host)
                self._applied = host
                rt.logger.info("hostname set", hostname=host, domainname=domain)

            def fill(r: Resource[Any], host: str = host, domain: str = domain) -> None:
                r.spec = HostnameStatusSpec(hostname=host, domainname=domain)

            await rt.modify(Resource.new(HostnameStatusSpec(), "hostname", namespace=NAMESPACE), fill)
            rt.reset_restart_backoff()
