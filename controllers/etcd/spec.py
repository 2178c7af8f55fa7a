"""EtcdSpecController: decides how the local etcd member runs and writes ``EtcdSpecs(etcd/etcd)``.

Inputs: ``EtcdConfigs(etcd)`` (control plane only), ``HostnameStatuses(hostname)`` (the member
name), ``NodeAddresses(current)`` (advertise/listen addresses through the subnet filters),
``EtcdCerts(etcd)`` (written to PEM files 0600 under the pki dir) and ``EtcdBootstraps`` (a
trigger; the marker file itself is read, so a rebooted node remembers). The spec it writes is
what ``EtcdServiceController`` runs, so it only appears once etcd may start:

* the data dir already holds a member (a restart): run it;
* the node was bootstrapped (Bootstrap RPC; marker file): a new single-member cluster, after
  restoring the uploaded snapshot when the bootstrap asked for a recovery;
* otherwise join: ask the cluster behind ``joinEndpoints`` to add this node as a learner (the
  server certificate must come from the etcd CA; its names are not checked, since the endpoint
  may be a load-balancer name no member certificate lists), run
  with ``initial-cluster-state=existing``, then promote it once it has caught up. While no
  cluster answers, retry every ``join_retry`` seconds (the first node waits for Bootstrap).

Once a spec runs, later changes keep its initial cluster (etcd ignores it with a data dir), so
only a real change (addresses, certificates, extra args) restarts etcd; a changed peer URL is
first written into the cluster's membership (MemberUpdate). A marker saying the
member left the cluster (EtcdLeaveCluster) removes the spec, which stops etcd. Why etcd cannot
run (bad config for this node, unreadable marker, failed recovery) is published as
``EtcdErrors(etcd/etcd)`` and logged.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
from collections.abc import Sequence
from typing import Any

import anyio

from kos.apis.etcd import EtcdClient, EtcdError
from kos.controllers.etcd.join import add_learner, joining_spec, promote_when_ready, restore_snapshot
from kos.controllers.etcd.marker import (
    EtcdPaths,
    MarkerError,
    has_member,
    read_marker,
    write_marker,
    write_private,
)
from kos.controllers.etcd.render import EtcdSpecError, render_args
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind
from kos.resources.core import Phase, Resource
from kos.resources.etcd import (
    ETCD_BOOTSTRAPS,
    ETCD_CONFIGS,
    ETCD_ERRORS,
    ETCD_SPECS,
    EtcdBootstrapSpec,
    EtcdConfigSpec,
    EtcdErrorSpec,
    EtcdSpecSpec,
)
from kos.resources.network import HOSTNAME_STATUSES, NODE_ADDRESSES, filter_addresses
from kos.resources.secrets import ETCD_CERTS, ETCD_CERTS_ID, EtcdCertsSpec

SPEC_ID = "etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380


class EtcdConfigError(ValueError):
    """The inputs cannot make an EtcdSpec; the message names the config field and the value."""


def _url(ip: str, port: int) -> str:
    addr = ipaddress.ip_address(ip)
    return f"https://[{addr}]:{port}" if addr.version == 6 else f"https://{addr}:{port}"


def _ips(addresses: Sequence[str]) -> list[str]:
    return [str(ipaddress.ip_interface(a).ip) for a in addresses]


def build_spec(
    cfg: EtcdConfigSpec,
    hostname: str,
    addresses: Sequence[str],
    paths: EtcdPaths,
    *,
    heartbeat_ms: int = 100,
    election_ms: int = 1000,
) -> EtcdSpecSpec:
    """The spec of a new single-member cluster for this node (pure; raises EtcdConfigError)."""
    if not hostname:
        raise EtcdConfigError("hostname: empty; etcd names its member after the node's hostname")
    try:
        advertised = filter_addresses(list(addresses), list(cfg.advertised_subnets), [])
    except ValueError as exc:
        raise EtcdConfigError(f"cluster.etcd.advertisedSubnets: {exc}") from None
    if not advertised:
        raise EtcdConfigError(
            f"cluster.etcd.advertisedSubnets: {cfg.advertised_subnets} match none of the node's addresses "
            f"{list(addresses)}"
        )
    if cfg.listen_subnets:
        try:
            listen = _ips(filter_addresses(list(addresses), list(cfg.listen_subnets), []))
        except ValueError as exc:
            raise EtcdConfigError(f"cluster.etcd.listenSubnets: {exc}") from None
        if not listen:
            raise EtcdConfigError(
                f"cluster.etcd.listenSubnets: {cfg.listen_subnets} match none of the node's addresses "
                f"{list(addresses)}"
            )
    else:
        listen = ["::" if any(ipaddress.ip_address(ip).version == 6 for ip in _ips(advertised)) else "0.0.0.0"]
    adv = _ips(advertised)
    peer = _url(adv[0], PEER_PORT)
    spec = EtcdSpecSpec(
        name=hostname,
        data_dir=str(paths.data_dir),
        listen_client_urls=[_url(ip, CLIENT_PORT) for ip in listen],
        advertise_client_urls=[_url(ip, CLIENT_PORT) for ip in adv],
        listen_peer_urls=[_url(ip, PEER_PORT) for ip in listen],
        advertise_peer_urls=[peer],
        initial_cluster={hostname: peer},
        initial_cluster_state="new",
        ca_file=paths.pki("ca.crt"),
        cert_file=paths.pki("server.crt"),
        key_file=paths.pki("server.key"),
        peer_ca_file=paths.pki("ca.crt"),
        peer_cert_file=paths.pki("peer.crt"),
        peer_key_file=paths.pki("peer.key"),
        heartbeat_ms=heartbeat_ms,
        election_ms=election_ms,
        extra_args=dict(cfg.extra_args),
    )
    try:
        render_args(spec)
    except EtcdSpecError as exc:
        field = "cluster.etcd.extraArgs" if "extra_args" in str(exc) else "etcd"
        raise EtcdConfigError(f"{field}: {exc}") from None
    return spec


def same_member(a: EtcdSpecSpec, b: EtcdSpecSpec) -> bool:
    """Equal but for the initial cluster (which etcd only reads on a member's first start)."""
    keep = {"initial_cluster": {}, "initial_cluster_state": "new"}
    return dataclasses.replace(a, **keep) == dataclasses.replace(b, **keep)  # type: ignore[arg-type]


PKI_FILES = (
    ("ca.crt", "ca_cert"), ("server.crt", "server_cert"), ("server.key", "server_key"),
    ("peer.crt", "peer_cert"), ("peer.key", "peer_key"), ("admin.crt", "admin_cert"), ("admin.key", "admin_key"),
)


def write_pki(paths: EtcdPaths, certs: EtcdCertsSpec) -> list[str]:
    """Write the etcd certificates as PEM files (0600); returns the names that changed (blocking)."""
    missing = [attr for _, attr in PKI_FILES if not getattr(certs, attr)]
    if missing:
        raise EtcdConfigError(f"EtcdCerts: {', '.join(missing)} empty")
    return [name for name, attr in PKI_FILES if write_private(paths.pki_dir / name, getattr(certs, attr).encode())]


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _move_into_place(scratch: str, data_dir: str) -> None:
    """Replace an empty (or missing) data dir with the restored one, 0700 (blocking)."""
    try:
        os.rmdir(data_dir)
    except FileNotFoundError:
        pass
    os.rename(scratch, data_dir)
    os.chmod(data_dir, 0o700)


class EtcdSpecController(Controller):
    name = "etcd.EtcdSpecController"

    def __init__(
        self,
        paths: EtcdPaths,
        *,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        join_retry: float = 1.0,
        join_timeout: float = 120.0,
        etcdctl: str = "etcdctl",
    ) -> None:
        self.paths = paths
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.join_retry = join_retry
        self.join_timeout = join_timeout
        self.etcdctl = etcdctl
        self._promote: list[str] | None = None  # join endpoints while this member may still be a learner

    def inputs(self) -> Sequence[Input]:
        return [
            Input(ETCD_CONFIGS.namespace, ETCD_CONFIGS.type, "etcd"),
            Input(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname"),
            Input(NODE_ADDRESSES.namespace, NODE_ADDRESSES.type, "current"),
            Input(ETCD_CERTS.namespace, ETCD_CERTS.type, ETCD_CERTS_ID),
            Input(ETCD_BOOTSTRAPS.namespace, ETCD_BOOTSTRAPS.type, "bootstrap"),
        ]

    def outputs(self) -> Sequence[Output]:
        return [Output(ETCD_SPECS.type, OutputKind.EXCLUSIVE), Output(ETCD_ERRORS.type, OutputKind.EXCLUSIVE)]

    async def run(self, rt: ControllerRuntime) -> None:
        retry: float | None = None
        while True:
            if retry is None:
                await rt.wait()
            else:
                with anyio.move_on_after(retry):
                    await rt.wait()
            retry = await self.reconcile(rt)
            rt.reset_restart_backoff()

    async def _write(self, rt: ControllerRuntime, spec: EtcdSpecSpec) -> None:
        def apply(r: Resource[Any]) -> None:
            r.spec = spec.copy()

        await rt.modify(Resource.new(EtcdSpecSpec(), SPEC_ID), apply)

    async def _error(self, rt: ControllerRuntime, message: str | None) -> None:
        """Publish (or clear, with None) why etcd cannot run here."""
        ptr = ETCD_ERRORS.pointer(SPEC_ID)
        if message is None:
            if await rt.get_or_none(ptr) is not None:
                await rt.destroy(ptr)
            return
        rt.logger.error("etcd cannot run", error=message)

        def apply(r: Resource[Any]) -> None:
            r.spec = EtcdErrorSpec(message=message)

        await rt.modify(Resource.new(EtcdErrorSpec(), SPEC_ID), apply)

    async def _drop(self, rt: ControllerRuntime) -> None:
        ptr = ETCD_SPECS.pointer(SPEC_ID)
        if await rt.get_or_none(ptr) is not None:
            await rt.destroy(ptr)

    async def reconcile(self, rt: ControllerRuntime) -> float | None:
        """One pass; returns seconds until the next try when waiting on something remote."""
        log = rt.logger
        cfg_r = await rt.get_or_none(ETCD_CONFIGS.pointer("etcd"))
        if cfg_r is None or cfg_r.metadata.phase != Phase.RUNNING:
            self._promote = None
            await self._drop(rt)
            await self._error(rt, None)
            return None
        host_r = await rt.get_or_none(HOSTNAME_STATUSES.pointer("hostname"))
        addr_r = await rt.get_or_none(NODE_ADDRESSES.pointer("current"))
        certs_r = await rt.get_or_none(ETCD_CERTS.pointer(ETCD_CERTS_ID))
        missing = [n for n, r in (("hostname", host_r), ("node addresses", addr_r), ("etcd certificates", certs_r))
                   if r is None]
        if host_r is None or addr_r is None or certs_r is None:
            log.info("etcd waits for its inputs", missing=missing)
            return None
        await rt.get_or_none(ETCD_BOOTSTRAPS.pointer("bootstrap"))  # a trigger; the file is the truth
        try:
            marker = await anyio.to_thread.run_sync(read_marker, self.paths.marker)
        except MarkerError as exc:
            await self._error(rt, str(exc))
            return None
        if marker.left:
            self._promote = None
            await self._drop(rt)
            return None
        try:
            changed = await anyio.to_thread.run_sync(write_pki, self.paths, certs_r.spec)
            base = build_spec(cfg_r.spec, host_r.spec.hostname, addr_r.spec.addresses, self.paths,
                              heartbeat_ms=self.heartbeat_ms, election_ms=self.election_ms)
        except EtcdConfigError as exc:
            await self._error(rt, str(exc))
            return None
        await self._error(rt, None)
        if changed:
            log.info("etcd certificates written", files=changed)
        current = await rt.get_or_none(ETCD_SPECS.pointer(SPEC_ID))
        if current is not None:
            if not same_member(current.spec, base):
                log.info("etcd configuration changed")
                if current.spec.advertise_peer_urls != base.advertise_peer_urls:
                    retry = await self._update_peer_urls(rt, cfg_r.spec, current.spec, base)
                    if retry is not None:
                        return retry
                await self._write(rt, dataclasses.replace(
                    base, initial_cluster=dict(current.spec.initial_cluster),
                    initial_cluster_state=current.spec.initial_cluster_state,
                ))
            return await self._promote_pending(rt, base)
        if await anyio.to_thread.run_sync(has_member, self.paths.data_dir):
            log.info("etcd data dir holds a member: starting it")
            await self._write(rt, base)
            if not marker.bootstrapped:  # a joined member: finish a promotion a restart interrupted
                self._promote = [e for e in cfg_r.spec.join_endpoints if e not in base.advertise_client_urls]
                return await self._promote_pending(rt, base)
            return None
        if marker.bootstrapped:
            if marker.recover_from:
                restored = await self._recover(rt, base, marker)
                if restored is None:
                    return None
                base = restored
            log.info("bootstrapping a new etcd cluster", name=base.name)
            await self._write(rt, base)
            return None
        return await self._join(rt, cfg_r.spec, base)

    async def _recover(
        self, rt: ControllerRuntime, base: EtcdSpecSpec, marker: EtcdBootstrapSpec
    ) -> EtcdSpecSpec | None:
        """Restore the uploaded snapshot into the data dir (through a scratch dir, so a failed
        restore leaves no half member behind); None when it failed (logged, not retried)."""
        rt.logger.info("recovering etcd from a snapshot", snapshot=marker.recover_from)
        scratch = base.data_dir + ".restore"
        await anyio.to_thread.run_sync(_remove_tree, scratch)
        try:
            restored = await restore_snapshot(marker.recover_from, dataclasses.replace(base, data_dir=scratch),
                                              etcdctl=self.etcdctl, skip_hash_check=marker.skip_hash_check)
        except (RuntimeError, OSError) as exc:
            await anyio.to_thread.run_sync(_remove_tree, scratch)
            await self._error(rt, f"etcd recovery failed: snapshot {marker.recover_from} cannot be restored: {exc}")
            return None
        await anyio.to_thread.run_sync(_move_into_place, scratch, base.data_dir)
        done = dataclasses.replace(marker, recover_from="", skip_hash_check=False)
        await anyio.to_thread.run_sync(write_marker, self.paths.marker, done)
        return dataclasses.replace(restored, data_dir=base.data_dir)

    async def _update_peer_urls(
        self, rt: ControllerRuntime, cfg: EtcdConfigSpec, old: EtcdSpecSpec, new: EtcdSpecSpec
    ) -> float | None:
        """The node's address changed: tell the cluster the member's new peer URLs before etcd
        restarts with them (etcd reaches members at the URLs in the membership, not at the
        ones a member advertises)."""
        endpoints = list(dict.fromkeys([*old.advertise_client_urls, *cfg.join_endpoints]))
        try:
            async with EtcdClient(endpoints, self.paths.admin_tls, timeout=3.0, check_hostname=False) as c:
                me = next((m for m in await c.member_list() if set(m.peer_urls) == set(old.advertise_peer_urls)),
                          None)
                if me is not None:
                    await c.member_update(me.id, new.advertise_peer_urls)
                    rt.logger.info("etcd member peer URLs updated", member=me.hex_id, peer_urls=new.advertise_peer_urls)
        except EtcdError as exc:
            rt.logger.warning("etcd member peer URLs not updated yet", reason=str(exc))
            return self.join_retry
        return None

    async def _join(self, rt: ControllerRuntime, cfg: EtcdConfigSpec, base: EtcdSpecSpec) -> float | None:
        endpoints = [e for e in cfg.join_endpoints if e not in base.advertise_client_urls]
        if not endpoints:
            rt.logger.info("etcd waits for the Bootstrap RPC (the control-plane endpoint is this node)")
            return None
        try:
            async with EtcdClient(endpoints, self.paths.admin_tls, timeout=3.0, check_hostname=False) as c:
                with anyio.fail_after(self.join_timeout):
                    plan = await add_learner(c, base.name, base.advertise_peer_urls)
        except (EtcdError, TimeoutError, OSError) as exc:
            rt.logger.info("etcd waits for a cluster to join (or the Bootstrap RPC)", endpoints=endpoints,
                           reason=str(exc))
            return self.join_retry
        rt.logger.info("joining etcd as a learner", member=plan.member.hex_id, cluster=sorted(plan.initial_cluster))
        await self._write(rt, joining_spec(base, plan))
        self._promote = endpoints
        return await self._promote_pending(rt, base)

    async def _promote_pending(self, rt: ControllerRuntime, base: EtcdSpecSpec) -> float | None:
        """Promote this member if it is still a learner (found by its peer URLs)."""
        if not self._promote:
            return None
        endpoints = self._promote
        try:
            async with EtcdClient(endpoints, self.paths.admin_tls, timeout=3.0, check_hostname=False) as c:
                me = next((m for m in await c.member_list() if set(m.peer_urls) == set(base.advertise_peer_urls)),
                          None)
                if me is None:
                    rt.logger.warning("this node is not an etcd member (removed?): nothing to promote")
                    self._promote = None
                    return None
                if me.is_learner:
                    await promote_when_ready(c, me.id, timeout=self.join_timeout, interval=0.2)
                    rt.logger.info("etcd learner promoted to voter", member=me.hex_id)
        except (EtcdError, TimeoutError, OSError) as exc:
            rt.logger.warning("etcd learner not promoted yet", reason=str(exc))
            return self.join_retry
        self._promote = None
        return None
