"""A real etcd cluster of N members on loopback, each supervised like on a node.

Used by tests, benchmarks and demos: every member gets its own 127.a.b.N address (ports 2379
and 2380), its own ``Supervisor`` and in-memory State (as if it were a separate machined),
certificates from a fresh CA (server+client for the member, a client certificate for the
admin), and goes through the real flow: ``bootstrap()`` the first member, ``join(i)`` the
others as learners through the client, then promote.
"""

from __future__ import annotations

import random
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kos.apis.etcd import EtcdClient, TLSFiles
from kos.controllers.etcd.flow import bootstrap_member, join_member
from kos.controllers.etcd.join import (
    publish_local_member,
)
from kos.machined.services import Supervisor
from kos.machined.services.etcd import EtcdRunner, etcd_service
from kos.resources.core import InMemoryState
from kos.resources.etcd import EtcdSpecSpec
from kos.resources.pki import generate_ca, issue_certificate


@dataclass
class LocalMember:
    name: str
    ip: str
    client_url: str
    peer_url: str
    spec: EtcdSpecSpec
    supervisor: Supervisor
    state: InMemoryState

    @property
    def runner(self) -> EtcdRunner:
        r = self.supervisor.definition("etcd").runner
        assert isinstance(r, EtcdRunner)
        return r


class LocalCluster:
    def __init__(
        self,
        workdir: Path,
        size: int = 3,
        *,
        heartbeat_ms: int = 50,
        election_ms: int = 300,
        stop_timeout: float = 2.0,
        subnet: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"cluster size must be >= 1, got {size}")
        self.workdir = workdir
        self.size = size
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.stop_timeout = stop_timeout
        self.subnet = subnet or f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
        self.members: list[LocalMember] = []
        self._stack = AsyncExitStack()
        self.admin_tls: TLSFiles
        self._member_tls: list[TLSFiles] = []

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = generate_ca("etcd-ca")
        ca.public_only().to_files(pki / "ca.crt")
        admin = issue_certificate(ca, common_name="admin", client=True)
        admin.to_files(pki / "admin.crt", pki / "admin.key")
        self.admin_tls = TLSFiles(str(pki / "ca.crt"), str(pki / "admin.crt"), str(pki / "admin.key"))
        for i in range(self.size):
            ip = self.ip(i)
            c = issue_certificate(
                ca, common_name=f"etcd-{i}", dns_names=["localhost"], ip_addresses=[ip, "127.0.0.1"],
                server=True, client=True,
            )
            c.to_files(pki / f"etcd-{i}.crt", pki / f"etcd-{i}.key")
            tls = TLSFiles(str(pki / "ca.crt"), str(pki / f"etcd-{i}.crt"), str(pki / f"etcd-{i}.key"))
            self._member_tls.append(tls)

    def member_tls(self, i: int) -> TLSFiles:
        """Member ``i``'s certificate (server+client) with the cluster CA."""
        return self._member_tls[i]

    def ip(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    def spec(self, i: int) -> EtcdSpecSpec:
        ip, tls = self.ip(i), self._member_tls[i]
        name = f"etcd-{i}"
        return EtcdSpecSpec(
            name=name,
            data_dir=str(self.workdir / name / "data"),
            listen_client_urls=[f"https://{ip}:2379"],
            advertise_client_urls=[f"https://{ip}:2379"],
            listen_peer_urls=[f"https://{ip}:2380"],
            advertise_peer_urls=[f"https://{ip}:2380"],
            initial_cluster={name: f"https://{ip}:2380"},
            ca_file=tls.ca, cert_file=tls.cert, key_file=tls.key,
            peer_ca_file=tls.ca, peer_cert_file=tls.cert, peer_key_file=tls.key,
            heartbeat_ms=self.heartbeat_ms,
            election_ms=self.election_ms,
        )

    async def __aenter__(self) -> LocalCluster:
        self._write_pki()
        for i in range(self.size):
            state = InMemoryState()
            group = f"kos-{self.subnet.replace('.', '-')}-{i}"  # each "node" its own cgroups
            sup = await self._stack.enter_async_context(Supervisor(state, cgroup_parent=group))
            spec = self.spec(i)
            sup.add(etcd_service(spec, self._member_tls[i], stop_timeout=self.stop_timeout))
            self.members.append(
                LocalMember(spec.name, self.ip(i), spec.advertise_client_urls[0], spec.advertise_peer_urls[0], spec,
                            sup, state)
            )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    def client(self, *members: int) -> EtcdClient:
        idx = members or tuple(range(self.size))
        return EtcdClient([self.members[i].client_url for i in idx], self.admin_tls, timeout=3.0)

    async def bootstrap(self, *, timeout: float = 20.0) -> None:
        """Start member 0 as a new single-member cluster and wait until it is healthy."""
        m = self.members[0]
        await bootstrap_member(m.supervisor, m.spec, self.admin_tls, timeout=timeout)
        async with self.client(0) as c:
            await publish_local_member(m.state, c, m.client_url)

    async def join(self, i: int, via: list[int], *, timeout: float = 20.0) -> None:
        """Join member ``i`` through healthy members ``via``: learner add, start, promote."""
        m = self.members[i]
        async with self.client(*via) as c:
            await join_member(m.supervisor, m.spec, c, self.admin_tls, timeout=timeout)
        async with self.client(i) as c:
            await publish_local_member(m.state, c, m.client_url)

    async def form(self) -> None:
        """Bootstrap member 0 and join all others in turn."""
        await self.bootstrap()
        for i in range(1, self.size):
            await self.join(i, list(range(i)))
