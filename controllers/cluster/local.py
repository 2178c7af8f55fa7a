"""This node in the cluster: its ``Identity`` and its own ``Affiliate``.

* ``IdentityController``: ``Identities(cluster/local)`` from ``<state>/node-id`` (created once
  with a random id, so a rebooted node keeps it; a reset that wipes STATE gets a new one).
* ``LocalAffiliateController``: Identity + ``HostnameStatuses(hostname)`` +
  ``NodeAddresses(current)`` + ``MachineTypes(machine-type)`` -> ``Affiliates(<node id>)``
  (addresses without their prefix length; the OS name from ``/etc/os-release``).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.resources.cluster import AFFILIATES, IDENTITIES, LOCAL_IDENTITY_ID, AffiliateSpec, IdentitySpec
from kos.resources.config import MACHINE_TYPE_ID, MachineTypeSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Resource
from kos.resources.network import HOSTNAME_STATUSES, NODE_ADDRESSES

ALPHABET = string.ascii_letters + string.digits


def new_node_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(43))


def load_or_create_node_id(state_dir: Path) -> str:
    path = state_dir / "node-id"
    try:
        text = path.read_text().strip()
        if text:
            return text
    except OSError:
        pass
    node_id = new_node_id()
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n")
    tmp.replace(path)
    return node_id


class IdentityController(Controller):
    name = "cluster.IdentityController"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def inputs(self) -> Sequence[Input]:
        return []

    def outputs(self) -> Sequence[Output]:
        return [Output(IDENTITIES.type, OutputKind.EXCLUSIVE)]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            node_id = await anyio.to_thread.run_sync(load_or_create_node_id, self.state_dir)

            def fill(r: Resource[Any], node_id: str = node_id) -> None:
                r.spec = IdentitySpec(node_id=node_id)

            await rt.modify(Resource.new(IdentitySpec(), LOCAL_IDENTITY_ID), fill)
            rt.reset_restart_backoff()


def os_name(path: Path = Path("/etc/os-release")) -> str:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "kos"


def strip_prefix(addresses: Sequence[str]) -> list[str]:
    return [a.split("/", 1)[0] for a in addresses]


class LocalAffiliateController(Controller):
    name = "cluster.LocalAffiliateController"

    def inputs(self) -> Sequence[Input]:
        return [
            Input(IDENTITIES.namespace, IDENTITIES.type, LOCAL_IDENTITY_ID, InputKind.WEAK),
            Input(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname", InputKind.WEAK),
            Input(NODE_ADDRESSES.namespace, NODE_ADDRESSES.type, "current", InputKind.WEAK),
            Input(CONFIG_NS, MachineTypeSpec.definition.type, MACHINE_TYPE_ID, InputKind.WEAK),
        ]

    def outputs(self) -> Sequence[Output]:
        return [Output(AFFILIATES.type, OutputKind.SHARED)]

    async def run(self, rt: ControllerRuntime) -> None:
        osname = await anyio.to_thread.run_sync(os_name)
        async for _ in rt.events():
            ident = await rt.get_or_none(IDENTITIES.pointer(LOCAL_IDENTITY_ID))
            host = await rt.get_or_none(HOSTNAME_STATUSES.pointer("hostname"))
            addrs = await rt.get_or_none(NODE_ADDRESSES.pointer("current"))
            mtype = await rt.get_or_none(_mt_ptr())
            if ident is None or host is None:
                continue
            spec = AffiliateSpec(
                node_id=ident.spec.node_id,
                hostname=host.spec.hostname,
                machine_type=mtype.spec.machine_type if mtype is not None else "unknown",
                operating_system=osname,
                addresses=strip_prefix(addrs.spec.addresses) if addrs is not None else [],
            )

            def fill(r: Resource[Any], spec: AffiliateSpec = spec) -> None:
                r.spec = spec

            await rt.modify(Resource.new(AffiliateSpec(), ident.spec.node_id), fill)
            rt.reset_restart_backoff()


def _mt_ptr() -> Any:
    from kos.resources.core import Pointer

    return Pointer(CONFIG_NS, MachineTypeSpec.definition.type, MACHINE_TYPE_ID)
