"""Render ``resolv.conf``, ``hosts`` and ``hostname`` into ``etc_dir`` (atomically) from the
merged ``ResolverSpecs``, ``HostnameStatuses``, the default ``NodeAddresses`` and the machine
config's static hosts; publish ``ResolverStatuses/resolvers`` and one ``EtcFileStatuses`` per
file (path and sha256 of what was written). A file is rewritten only when its content changes.
While the host DNS cache listens on ``127.0.0.53`` (``HostDNSStatuses/config``), resolv.conf
names it as the only nameserver; ``ResolverStatuses`` still lists the upstream resolvers and
``resolv.conf.upstream`` has them too (the kubelet gives that file to pods while host DNS is on:
127.0.0.53 is not reachable from a pod's network namespace).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind
from kos.platform.network.etcfiles import digest, render_hostname, render_hosts, render_resolv_conf, write_atomic
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Pointer, Resource
from kos.resources.network import (
    ETC_FILE_STATUSES,
    HOST_DNS_ADDRESS,
    HOST_DNS_ID,
    HOST_DNS_STATUSES,
    HOSTNAME_STATUSES,
    NAMESPACE,
    NODE_ADDRESSES,
    RESOLVER_SPECS,
    RESOLVER_STATUSES,
    EtcFileStatusSpec,
    ResolverStatusSpec,
)

_MC = Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID)


def static_hosts(spec: MachineConfigSpec | None) -> list[tuple[str, tuple[str, ...]]]:
    if spec is None:
        return []
    from kos.resources.machineconfig import views

    try:
        return [(h.ip, h.hostnames) for h in views.static_hosts(spec.container())]
    except Exception:  # an invalid config is reported by the config layer controller
        return []


class EtcFilesController(Controller):
    name = "network.EtcFilesController"

    def __init__(self, etc_dir: str) -> None:
        self.etc_dir = Path(etc_dir)
        self._written: dict[str, str] = {}

    def inputs(self) -> Sequence[Input]:
        return (
            Input(RESOLVER_SPECS.namespace, RESOLVER_SPECS.type, "resolvers"),
            Input(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname"),
            Input(NODE_ADDRESSES.namespace, NODE_ADDRESSES.type, "default"),
            Input(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID),
            Input(HOST_DNS_STATUSES.namespace, HOST_DNS_STATUSES.type, HOST_DNS_ID),
        )

    def outputs(self) -> Sequence[Output]:
        return (Output(ETC_FILE_STATUSES.type, OutputKind.EXCLUSIVE), Output(RESOLVER_STATUSES.type,
                                                                             OutputKind.EXCLUSIVE))

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.cycle(rt)

    async def cycle(self, rt: ControllerRuntime) -> None:
        resolvers = await rt.get_or_none(Pointer(RESOLVER_SPECS.namespace, RESOLVER_SPECS.type, "resolvers"))
        hostname = await rt.get_or_none(Pointer(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname"))
        default = await rt.get_or_none(Pointer(NODE_ADDRESSES.namespace, NODE_ADDRESSES.type, "default"))
        mc = await rt.get_or_none(_MC)
        host_dns = await rt.get_or_none(HOST_DNS_STATUSES.pointer(HOST_DNS_ID))
        if resolvers is not None:
            servers, search = list(resolvers.spec.dns_servers), list(resolvers.spec.search_domains)
            local = host_dns is not None and f"{HOST_DNS_ADDRESS}:53" in host_dns.spec.listening
            await self.write(rt, "resolv.conf", render_resolv_conf([HOST_DNS_ADDRESS] if local else servers, search))
            # the upstream resolvers themselves: the kubelet's resolvConf while host DNS is on
            await self.write(rt, "resolv.conf.upstream", render_resolv_conf(servers, search))

            def fill(r: Resource[Any]) -> None:
                r.spec = ResolverStatusSpec(dns_servers=servers, search_domains=search)

            await rt.modify(Resource.new(ResolverStatusSpec(), "resolvers", namespace=NAMESPACE), fill)
        if hostname is not None:
            addr = ""
            if default is not None and default.spec.addresses:
                addr = str(ipaddress.ip_interface(default.spec.addresses[0]).ip)
            host, domain = hostname.spec.hostname, hostname.spec.domainname
            await self.write(rt, "hosts", render_hosts(host, domain, addr, static_hosts(mc.spec if mc else None)))
            await self.write(rt, "hostname", render_hostname(host))
        rt.reset_restart_backoff()

    async def write(self, rt: ControllerRuntime, name: str, content: str) -> None:
        path = self.etc_dir / name
        sha = digest(content)
        if self._written.get(name) != sha:
            await anyio.to_thread.run_sync(write_atomic, path, content)
            self._written[name] = sha
            rt.logger.info("etc file written", path=str(path))

        def fill(r: Resource[Any]) -> None:
            r.spec = EtcFileStatusSpec(path=str(path), sha256=sha)

        await rt.modify(Resource.new(EtcFileStatusSpec(), name, namespace=NAMESPACE), fill)
