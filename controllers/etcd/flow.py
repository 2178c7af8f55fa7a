"""The whole bootstrap and join flows for a supervised etcd (what the Bootstrap RPC and the
join-on-boot sequence call): set the etcd runner's spec, start the service, wait for health,
promote when joining, and return the local member id.
"""

from __future__ import annotations

from kos.apis.etcd import EtcdClient, TLSFiles
from kos.controllers.etcd.join import add_learner, check_can_bootstrap, joining_spec, promote_when_ready
from kos.controllers.etcd.service import etcd_runner
from kos.controllers.runtime import ServiceManager
from kos.resources.etcd import EtcdSpecSpec

SERVICE_ID = "etcd"


async def _own_member_id(spec: EtcdSpecSpec, tls: TLSFiles | None) -> int:
    async with EtcdClient(spec.advertise_client_urls[:1], tls) as c:
        return (await c.status()).member_id


async def bootstrap_member(
    sup: ServiceManager, spec: EtcdSpecSpec, tls: TLSFiles | None, *, timeout: float = 30.0
) -> int:
    """Start a new single-member cluster (refused when the data dir already holds one)."""
    if spec.initial_cluster_state != "new" or set(spec.initial_cluster) != {spec.name}:
        raise ValueError(
            f"bootstrap: EtcdSpec must be state 'new' with only {spec.name!r} in initial_cluster, "
            f"got {spec.initial_cluster_state!r} with {sorted(spec.initial_cluster)}"
        )
    await check_can_bootstrap(spec)
    etcd_runner(sup).spec = spec
    await sup.start(SERVICE_ID)
    await sup.wait_healthy(SERVICE_ID, timeout=timeout)
    return await _own_member_id(spec, tls)


async def join_member(
    sup: ServiceManager, spec: EtcdSpecSpec, cluster: EtcdClient, tls: TLSFiles | None, *, timeout: float = 30.0
) -> int:
    """Join through ``cluster`` (a client of healthy members): learner add, start with
    state=existing, wait healthy, promote."""
    plan = await add_learner(cluster, spec.name, spec.advertise_peer_urls)
    etcd_runner(sup).spec = joining_spec(spec, plan)
    await sup.start(SERVICE_ID)
    await sup.wait_healthy(SERVICE_ID, timeout=timeout)
    await promote_when_ready(cluster, plan.member.id, timeout=timeout)
    return plan.member.id
