"""A cluster of in-process control-plane nodes running etcd the way machined does.

Each ``ApiNode`` is what a machined would host for etcd: its own InMemoryState, controller
Runtime (``etcd_controllers``), service Supervisor (the ``etcd`` service, own cgroups) and the
machine API on ``127.a.b.N`` over mutual TLS with ``EtcdAPI`` and ``EtcdMaintenanceAPI`` plugged in. The inputs other
parts of kos produce are written like they would be: the machine config (a generated
control-plane config whose ``controlPlane.endpoint`` is node 0, subnet filters selecting the
node's own address), the machine type, ``HostnameStatuses`` and ``NodeAddresses``; the real
secrets controllers issue ``EtcdCerts`` from the config's etcd CA. Used by tests/etcd and
bench/etcd_api.py.
"""

from __future__ import annotations

import base64
import random
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from kos.apis import auth
from kos.apis.client import Connection
from kos.apis.etcd import EtcdClient
from kos.apis.server.dispatch import Node
from kos.apis.server.machine import ConfigStore, MachineService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import server_context
from kos.controllers.etcd.assembly import etcd_controllers
from kos.controllers.etcd.marker import EtcdPaths
from kos.controllers.runtime import Runtime
from kos.controllers.secrets.assembly import secrets_controllers
from kos.machined.api import EtcdAPI
from kos.machined.api.etcdmaint import EtcdMaintenanceAPI
from kos.machined.services import Supervisor
from kos.machined.services.etcd import etcd_service_definition
from kos.resources.config import ACTIVE_ID, MACHINE_TYPE_ID, MachineConfigSpec, MachineTypeSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.machineconfig import ConfigContainer
from kos.resources.machineconfig.generate import GenOptions, generate
from kos.resources.machineconfig.secrets import SecretsBundle
from kos.resources.network import HostnameStatusSpec, NodeAddressSpec
from kos.resources.pki import CertificateAndKey, generate_ca, issue_certificate


@dataclass
class ApiNode:
    index: int
    name: str
    ip: str
    root: Path
    state: InMemoryState
    supervisor: Supervisor
    paths: EtcdPaths
    server: APIServer
    stop_requested: anyio.Event = field(default_factory=anyio.Event)
    finished: anyio.Event = field(default_factory=anyio.Event)

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{self.server.port}"

    @property
    def client_url(self) -> str:
        return f"https://{self.ip}:2379"


class NodeCluster:
    def __init__(
        self,
        workdir: Path,
        size: int = 3,
        *,
        subnet: str | None = None,
        heartbeat_ms: int = 50,
        election_ms: int = 300,
        stop_timeout: float = 2.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"cluster size must be >= 1, got {size}")
        self.workdir = workdir
        self.size = size
        self.subnet = subnet or f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.stop_timeout = stop_timeout
        self.nodes: list[ApiNode] = []
        self._stack = AsyncExitStack()
        self._tg: anyio.abc.TaskGroup | None = None
        self._conns: list[Connection] = []

    def ip(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    # -- PKI and config -------------------------------------------------------------------
    def _prepare(self) -> None:
        self.os_ca = generate_ca("kos", organization="kos")
        self.admin = issue_certificate(self.os_ca, common_name="admin", organizations=[auth.ADMIN], client=True)
        gen = generate(GenOptions(cluster_name="kos-etcd", endpoint=f"https://{self.ip(0)}:6443"),
                       SecretsBundle.generate())
        data = gen.controlplane.to_data()
        etcd = data[0]["cluster"].setdefault("etcd", {})
        etcd["advertisedSubnets"] = [f"{self.subnet}.0/24"]
        etcd["listenSubnets"] = [f"{self.subnet}.0/24"]
        self.config = ConfigContainer.from_data(data)
        ca = self.config.config.cluster.etcd.ca
        self.etcd_ca = CertificateAndKey(base64.b64decode(ca.crt), base64.b64decode(ca.key))
        pki = self.workdir / "admin-etcd"
        pki.mkdir(parents=True, exist_ok=True)
        self.etcd_ca.public_only().to_files(pki / "ca.crt")
        issue_certificate(self.etcd_ca, common_name="root", client=True).to_files(pki / "admin.crt", pki / "admin.key")

    def etcd_client(self, *nodes: int) -> EtcdClient:
        """A direct etcd client (admin certificate of the etcd CA) to the given nodes."""
        from kos.apis.etcd import TLSFiles

        pki = self.workdir / "admin-etcd"
        tls = TLSFiles(str(pki / "ca.crt"), str(pki / "admin.crt"), str(pki / "admin.key"))
        idx = nodes or tuple(range(len(self.nodes)))
        return EtcdClient([self.nodes[i].client_url for i in idx], tls, timeout=3.0)

    def connect(self, i: int, *, timeout: float = 30.0) -> Connection:
        """An ``os:admin`` API connection to node ``i`` (closed with the cluster)."""
        conn = Connection(self.nodes[i].endpoint, ca=self.os_ca.cert_pem, identity=self.admin, timeout=timeout)
        self._conns.append(conn)
        return conn

    def kosconfig(self, path: Path, i: int = 0) -> Path:
        """Write a kosctl client config (os:admin) whose endpoint is node ``i``."""
        from kos.apis.client import ClientConfig, Context

        ctx = Context(endpoints=[self.nodes[i].endpoint], ca=self.os_ca.cert_pem, crt=self.admin.cert_pem,
                      key=self.admin.key_pem)
        ClientConfig(context="kos", contexts={"kos": ctx}).save(path)
        return path

    def connect_as(self, i: int, roles: list[str]) -> Connection:
        who = issue_certificate(self.os_ca, common_name="someone", organizations=roles, client=True)
        conn = Connection(self.nodes[i].endpoint, ca=self.os_ca.cert_pem, identity=who)
        self._conns.append(conn)
        return conn

    # -- nodes ----------------------------------------------------------------------------
    async def _node(self, i: int, *, task_status: anyio.abc.TaskStatus[ApiNode]) -> None:
        """One node's life in its own task: its supervisor, runtime and API server."""
        ip, name = self.ip(i), f"cp-{i}"
        root = self.workdir / name
        root.mkdir(parents=True, exist_ok=True)
        state = InMemoryState()
        paths = EtcdPaths(root)
        group = f"kos-{self.subnet.replace('.', '-')}-{i}"  # each node its own cgroups
        async with Supervisor(state, cgroup_parent=group) as sup:
            sup.add(etcd_service_definition(paths, stop_timeout=self.stop_timeout))
            for spec, rid in (
                (MachineConfigSpec.from_container(self.config), ACTIVE_ID),
                (MachineTypeSpec(machine_type="controlplane"), MACHINE_TYPE_ID),
                (HostnameStatusSpec(hostname=name), "hostname"),
                (NodeAddressSpec(addresses=[f"{ip}/32"]), "current"),
                (NodeAddressSpec(addresses=[f"{ip}/32"]), "accumulative"),
            ):
                await state.create(Resource.new(spec, rid))
            runtime = Runtime(state, backoff_initial=0.05, backoff_max=1.0)
            for c in secrets_controllers():  # EtcdCerts from the config's etcd CA and the node's names
                runtime.register(c)
            def define(sup: Supervisor = sup, paths: EtcdPaths = paths) -> None:
                sup.add(etcd_service_definition(paths, stop_timeout=self.stop_timeout))

            for c in etcd_controllers(supervisor=sup, paths=paths, define_service=define,
                                      heartbeat_ms=self.heartbeat_ms,
                                      election_ms=self.election_ms, join_retry=0.25, healthy_timeout=30.0):
                runtime.register(c)
            machine = MachineService(config=ConfigStore(root / "config.yaml"), supervisor=sup,
                                     extensions=[EtcdAPI(state, sup, paths), EtcdMaintenanceAPI(state, sup, paths)])
            server_id = issue_certificate(self.os_ca, common_name=name, ip_addresses=[ip], server=True)
            server = await APIServer.start(
                ip, 0, server_context(server_id, self.os_ca.cert_pem), node=Node(names=frozenset({ip}), port=0),
                state=StateService(state, auth.ResourcePolicy()), machine=machine,
            )
            node = ApiNode(i, name, ip, root, state, sup, paths, server)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(runtime.run)
                    task_status.started(node)
                    await node.stop_requested.wait()
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await sup.stop_all()
                    await server.close(grace=1.0)
                    node.finished.set()

    async def stop_node(self, i: int) -> None:
        """Stop node ``i`` like a shutdown: controllers, then etcd, then the API."""
        node = self.nodes[i]
        node.stop_requested.set()
        await node.finished.wait()

    async def restart_node(self, i: int) -> ApiNode:
        """Stop node ``i`` and start it again on the same disk (a new in-memory state, like a
        machined restart): it must find its etcd member, and its bootstrap marker, on disk."""
        assert self._tg is not None
        await self.stop_node(i)
        self.nodes[i] = await self._tg.start(self._node, i)
        return self.nodes[i]

    async def __aenter__(self) -> NodeCluster:
        await anyio.to_thread.run_sync(self._prepare)
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.push_async_callback(self._stop_all)
        for i in range(self.size):
            self.nodes.append(await self._tg.start(self._node, i))
        return self

    async def _stop_all(self) -> None:
        """Stop every node in parallel (a SIGTERM'd etcd takes seconds)."""
        for conn in self._conns:
            conn.close()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for i in range(len(self.nodes)):
                    tg.start_soon(self.stop_node, i)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> Any:
        await self._stack.aclose()
