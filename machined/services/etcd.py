"""The ``etcd`` service: Debian's etcd-server run from an EtcdSpec, healthy when it has a leader.

``EtcdRunner`` renders the command line from its current ``spec`` at every (re)start, after
checking the binary's version and creating the data dir (0700), so a join or a recovery just
swaps the spec. Health: Maintenance.Status over mTLS on the member's own client URL reports a
leader and no errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio

from kos.apis.etcd import EtcdClient, EtcdError, TLSFiles
from kos.controllers.etcd.marker import EtcdPaths
from kos.controllers.etcd.render import check_version, render_args
from kos.machined.services.conditions import Condition
from kos.machined.services.health import HealthCheck
from kos.machined.services.runners import ProcessRunner
from kos.machined.services.supervisor import BackoffPolicy, RestartPolicy, ServiceDefinition
from kos.resources.etcd import EtcdSpecSpec

ETCD_BACKOFF = BackoffPolicy(initial=0.1, multiplier=2.0, maximum=10.0, reset_after=10.0)
"""A crashed etcd comes back fast (the cluster is degraded meanwhile)."""


@dataclass
class EtcdRunner(ProcessRunner):
    spec: EtcdSpecSpec = field(default_factory=EtcdSpecSpec)
    binary: str = "etcd"
    version: tuple[int, int, int] | None = None

    async def prepare(self) -> None:
        self.version = await anyio.to_thread.run_sync(check_version, self.binary)
        self.args = render_args(self.spec, self.binary)
        await anyio.to_thread.run_sync(_make_data_dir, self.spec.data_dir)
        await super().prepare()


def _make_data_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def etcd_health_probe(endpoint: str | Callable[[], str], tls: TLSFiles | None) -> HealthCheck:
    """Healthy: the member answers Maintenance.Status with a leader and no errors. ``endpoint``
    may be a callable, read at every probe (the runner's current spec)."""

    kept: list[tuple[object, EtcdClient]] = []  # one client between probes: no TLS handshake per probe

    async def probe() -> None:
        ep = endpoint() if callable(endpoint) else endpoint
        key = (ep, tls, _mtimes(tls))  # renewed certificate files: a new client
        if kept and kept[0][0] != key:
            kept.pop()[1].close()
        if not kept:
            kept.append((key, EtcdClient([ep], tls, timeout=1.0)))
        c = kept[0][1]
        try:
            st = await c.status()
        except BaseException:
            kept.pop()[1].close()
            raise
        if st.errors:
            raise EtcdError(f"member reports errors: {', '.join(st.errors)}")
        if st.leader == 0:
            raise EtcdError("no leader")

    # fast until healthy (each start probes anew), then every 15 s over the kept connection (a
    # Status call); a crash is seen by the supervisor from the exit, not from the probe
    return HealthCheck(probe, interval=0.25, timeout=1.5, healthy_interval=15.0)


def _mtimes(tls: TLSFiles | None) -> tuple[float, ...]:
    if tls is None:
        return ()
    out = []
    for path in (tls.ca, tls.cert, tls.key):
        try:
            out.append(os.stat(path).st_mtime)
        except OSError:
            out.append(0.0)
    return tuple(out)


def etcd_service(
    spec: EtcdSpecSpec | None,
    client_tls: TLSFiles | None,
    *,
    binary: str = "etcd",
    depends_on: Sequence[Condition] = (),
    stop_timeout: float = 15.0,
    backoff: BackoffPolicy = ETCD_BACKOFF,
) -> ServiceDefinition:
    """The ``etcd`` service definition; ``client_tls`` is a client certificate for the health probe.
    Its runner is an ``EtcdRunner``: change ``definition.runner.spec`` before a (re)start. Without
    a spec (a node whose addresses are not known yet) the health probe follows the runner's spec."""
    runner = EtcdRunner(args=[binary], stop_timeout=stop_timeout, spec=spec or EtcdSpecSpec(), binary=binary)

    def endpoint() -> str:
        urls = runner.spec.advertise_client_urls
        if not urls:
            raise EtcdError("etcd has no client URL yet (no EtcdSpec)")
        return urls[0]

    return ServiceDefinition(
        "etcd",
        runner,
        depends_on=depends_on,
        restart=RestartPolicy.FOREVER,
        backoff=backoff,
        health=etcd_health_probe(endpoint, client_tls),
    )


def etcd_service_definition(paths: EtcdPaths, *, binary: str = "etcd", stop_timeout: float = 15.0) -> ServiceDefinition:
    """The ``etcd`` service of a node (idle until the etcd controllers give it a spec)."""
    return etcd_service(None, paths.admin_tls, binary=binary, stop_timeout=stop_timeout)
