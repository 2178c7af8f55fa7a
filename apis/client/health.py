"""The cluster health checks, shared by ``kosctl health`` (run by the client) and the
``ClusterHealthCheck`` RPC (run by a node: ``kosctl health --server``).

A check is ``async def check(conn, nodes) -> note | None`` over a client ``Connection`` (each
call goes through the connection's endpoint with ``node`` metadata) and the ``ClusterNodes``;
it raises ``CheckFailed`` with what is wrong. ``health_events`` runs them in order, each
retried until it passes or the timeout runs out, as a stream of ``HealthEvent`` (RUNNING with
the reason it waits, OK with its note, FAILED on timeout; nothing follows a FAILED);
``line(event)`` is the text kosctl prints for one event. Checks, in order:

1. all nodes' API answers (Version through the endpoint, forwarded with ``node`` metadata);
2. all nodes finished booting (``MachineStatus`` stage ``running``);
   then time in sync (``TimeStatuses(node)`` synced, offset under 1 s; a node whose clock is
   not its own to set, a namespace node on the host's clock, passes and is named);
3. etcd is healthy on every control plane (EtcdMemberList answers);
4. etcd members are consistent across the control planes (same member ids everywhere);
5. etcd members are exactly the control-plane nodes (one voting member per control plane,
   each advertising that node's address);
6. no service failed on any node (ServiceList);
7. every node is a cluster member (the first control plane's ``Members`` hold every node's
   address: discovery works);
8. all nodes are ready (``MachineStatus.ready``; otherwise the unmet conditions are shown).
   A node whose only unmet conditions are services waiting for a binary it does not have
   (a kubelet without its binary) passes, and the check's note names them, so the gap stays
   visible;
9. Kubernetes (``kubecheck``): every node is a Ready Node, the control-plane static pods run
   on every control plane, kube-proxy and CoreDNS are ready; a pod that cannot get its image
   is named with the image. Skipped, with a note, while the kubelet waits for its binary.
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

M = "/kos.machine.MachineService/"


class CheckFailed(Exception):
    pass


@dataclass
class ClusterNodes:
    control_planes: list[str]
    workers: list[str] = field(default_factory=list)
    kube_endpoint: str | None = None  # the Kubernetes API as the checker reaches it (default: the cluster endpoint)

    @property
    def all(self) -> list[str]:
        return [*self.control_planes, *self.workers]


Check = Callable[[Any, ClusterNodes], Awaitable[str | None]]


async def _version(conn: Any, nodes: ClusterNodes) -> str | None:
    from kos.apis.client.connection import APIError
    from kos.apis.gen.kos import machine as pb

    bad = []
    for n in nodes.all:
        try:
            resp = pb.VersionResponse().parse(await conn.unary(M + "Version", b"", node=n, timeout=5))
        except APIError as exc:
            bad.append(f"{n}: {exc.status.name}: {exc.message}")
            continue
        if resp.maintenance:
            bad.append(f"{n}: still in maintenance mode")
    if bad:
        raise CheckFailed("; ".join(bad))
    return None


async def _machine_status(conn: Any, node: str) -> Any:
    from kos.apis.client.connection import APIError
    from kos.apis.client.state import GrpcState
    from kos.resources.core import NotFoundError
    from kos.resources.runtime import MACHINE_STATUS_ID, MACHINE_STATUSES

    try:
        return (await GrpcState(conn, node=node).get(MACHINE_STATUSES.pointer(MACHINE_STATUS_ID))).spec
    except NotFoundError:
        raise CheckFailed(f"{node}: no MachineStatus yet") from None
    except APIError as exc:
        raise CheckFailed(f"{node}: {exc.status.name}: {exc.message}") from None


async def _booted(conn: Any, nodes: ClusterNodes) -> str | None:
    bad = []
    for n in nodes.all:
        st = await _machine_status(conn, n)
        if st.stage != "running":
            bad.append(f"{n}: stage {st.stage}" + (f" (phase {st.phase})" if st.phase else ""))
    if bad:
        raise CheckFailed("; ".join(bad))
    return None


async def _time(conn: Any, nodes: ClusterNodes) -> str | None:
    """Time in sync: every node's ``TimeStatuses(node)`` synced with an offset under a second,
    or (namespace nodes) a clock that is not the node's to set: the host's, shared by all."""
    from kos.apis.client.connection import APIError
    from kos.apis.client.state import GrpcState
    from kos.resources.core import NotFoundError
    from kos.resources.network import TIME_STATUSES

    bad, shared = [], []
    for n in nodes.all:
        try:
            st = (await GrpcState(conn, node=n).get(TIME_STATUSES.pointer("node"))).spec
        except NotFoundError:
            bad.append(f"{n}: no TimeStatus yet")
            continue
        except APIError as exc:
            raise CheckFailed(f"{n}: {exc.status.name}: {exc.message}") from None
        if st.synced and abs(st.offset) < 1.0:
            continue
        if not st.adjusted:
            shared.append(n)
            continue
        bad.append(f"{n}: " + (f"offset {st.offset:+.3f} s" if st.synced else st.error or "not synced"))
    if bad:
        raise CheckFailed("; ".join(bad))
    return f"host clock shared by {', '.join(shared)}" if shared else None


async def _members(conn: Any, node: str) -> list[Any]:
    from kos.apis.client.connection import APIError
    from kos.apis.gen.kos import machine as pb

    try:
        data = await conn.unary(M + "EtcdMemberList", b"", node=node, timeout=10)
    except APIError as exc:
        raise CheckFailed(f"{node}: {exc.status.name}: {exc.message}") from None
    return list(pb.EtcdMemberListResponse().parse(data).members)


async def _etcd_healthy(conn: Any, nodes: ClusterNodes) -> str | None:
    if not nodes.control_planes:
        raise CheckFailed("no control-plane nodes given")
    for n in nodes.control_planes:
        await _members(conn, n)
    return None


async def _etcd_consistent(conn: Any, nodes: ClusterNodes) -> str | None:
    seen: dict[str, list[str]] = {}
    for n in nodes.control_planes:
        seen[n] = sorted(f"{m.id:x}" for m in await _members(conn, n))
    first = next(iter(seen.values()))
    bad = {n: ids for n, ids in seen.items() if ids != first}
    if bad:
        raise CheckFailed("member lists differ: " + "; ".join(f"{n}: {ids}" for n, ids in seen.items()))
    return f"{len(first)} members"


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.rsplit(":", 1)[0].strip("[]")


async def _etcd_members_are_cps(conn: Any, nodes: ClusterNodes) -> str | None:
    members = await _members(conn, nodes.control_planes[0])
    learners = [m.hostname or f"{m.id:x}" for m in members if m.is_learner]
    if learners:
        raise CheckFailed(f"learners not promoted yet: {learners}")
    hosts = sorted(h for m in members for h in {_host(u) for u in m.peer_urls})
    want = sorted(_host(n) for n in nodes.control_planes)
    if hosts != want:
        raise CheckFailed(f"etcd members advertise {hosts}, expected the control planes {want}")
    return None


async def _services(conn: Any, nodes: ClusterNodes) -> str | None:
    from kos.apis.client.connection import APIError
    from kos.apis.gen.kos import machine as pb

    bad = []
    for n in nodes.all:
        try:
            resp = pb.ServiceListResponse().parse(await conn.unary(M + "ServiceList", b"", node=n, timeout=10))
        except APIError as exc:
            raise CheckFailed(f"{n}: {exc.status.name}: {exc.message}") from None
        bad += [f"{n}: {s.id} {s.state}" for s in resp.services if s.state == "Failed"]
    if bad:
        raise CheckFailed("failed services: " + "; ".join(bad))
    return None


async def _members_complete(conn: Any, nodes: ClusterNodes) -> str | None:
    """Cluster discovery: the first control plane's Members list every node, with its address."""
    from kos.apis.client.connection import APIError
    from kos.apis.client.state import GrpcState
    from kos.resources.cluster import MEMBERS

    try:
        members = await GrpcState(conn, node=nodes.control_planes[0]).list(MEMBERS)
    except APIError as exc:
        raise CheckFailed(f"{nodes.control_planes[0]}: {exc.status.name}: {exc.message}") from None
    seen = {a for m in members for a in m.spec.addresses}
    missing = [n for n in nodes.all if _host(n) not in seen]
    if missing:
        raise CheckFailed(f"not members yet: {', '.join(missing)}")
    return f"{len(members)} members"


MISSING_BINARY = "binary not found"


async def _ready(conn: Any, nodes: ClusterNodes) -> str | None:
    """Ready everywhere; a node whose only unmet conditions are services waiting for a binary
    this host does not have (kubelet here) passes with that named in the note."""
    bad, missing = [], []
    for n in nodes.all:
        st = await _machine_status(conn, n)
        if st.ready:
            continue
        conds = list(st.unmet_conditions)
        if conds and all(MISSING_BINARY in c.reason for c in conds):
            missing += [f"{n}: {c.name}" for c in conds]
            continue
        unmet = "; ".join(f"{c.name}: {c.reason}" for c in conds) or "not ready"
        bad.append(f"{n}: {unmet}")
    if bad:
        raise CheckFailed(" | ".join(bad))
    return f"except services whose binary is not installed here: {', '.join(missing)}" if missing else None


async def _kubelet_missing(conn: Any, nodes: ClusterNodes) -> str | None:
    """Why Kubernetes cannot run here (the kubelet waits for its binary), or None."""
    from kos.apis.gen.kos import machine as pb

    n = nodes.control_planes[0]
    resp = pb.ServiceListResponse().parse(await conn.unary(M + "ServiceList", b"", node=n, timeout=10))
    for s in resp.services:
        if s.id == "kubelet" and MISSING_BINARY in (s.events[-1].msg if s.events else ""):
            return f"skipped: {n}: {s.events[-1].msg}"
    return None


async def _kube(conn: Any, nodes: ClusterNodes) -> Any:
    from kos.apis.client.connection import APIError
    from kos.apis.client.kubecheck import KubeError, kube_access

    try:
        return await kube_access(conn, nodes.control_planes[0], nodes.kube_endpoint)
    except (APIError, KubeError) as exc:
        raise CheckFailed(f"{nodes.control_planes[0]}: Kubernetes credentials: {exc}") from None


async def _kube_get(access: Any, path: str) -> Any:
    from kos.apis.client.kubecheck import KubeError

    try:
        return await access.get(path)
    except KubeError as exc:
        raise CheckFailed(str(exc)) from None


async def _image_note(access: Any) -> str:
    from kos.apis.client.kubecheck import image_problems

    try:
        pods = (await access.get("/api/v1/pods"))["items"]
    except Exception:  # the note is a bonus: never mask the check's own failure
        return ""
    problems = image_problems(pods)
    return (" | " + "; ".join(problems[:10])) if problems else ""


def _kube_check(body: Callable[[Any, ClusterNodes], Awaitable[str]]) -> Check:
    async def check(conn: Any, nodes: ClusterNodes) -> str | None:
        from kos.apis.client.kubecheck import KubeError

        skipped = await _kubelet_missing(conn, nodes)
        if skipped:
            return skipped
        access = await _kube(conn, nodes)
        try:
            return await body(access, nodes)
        except (KubeError, CheckFailed) as exc:
            raise CheckFailed(f"{exc}{await _image_note(access)}") from None

    return check


async def _k8s_nodes(access: Any, nodes: ClusterNodes) -> str:
    from kos.apis.client.kubecheck import check_nodes

    items = (await _kube_get(access, "/api/v1/nodes"))["items"]
    return check_nodes(items, [_host(n) for n in nodes.all])


async def _k8s_static_pods(access: Any, nodes: ClusterNodes) -> str:
    from kos.apis.client.kubecheck import check_static_pods, node_addresses

    items = (await _kube_get(access, "/api/v1/nodes"))["items"]
    want = {_host(n) for n in nodes.control_planes}
    names = [n["metadata"]["name"] for n in items if node_addresses(n) & want]
    if len(names) < len(want):
        raise CheckFailed(f"control planes without a Node: {len(want) - len(names)}")
    pods = (await _kube_get(access, "/api/v1/namespaces/kube-system/pods"))["items"]
    return check_static_pods(pods, names)


async def _k8s_kube_proxy(access: Any, nodes: ClusterNodes) -> str:
    from kos.apis.client.kubecheck import check_workload, optional

    return check_workload(await optional(access, "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy"),
                          "kube-proxy")


async def _k8s_coredns(access: Any, nodes: ClusterNodes) -> str:
    from kos.apis.client.kubecheck import check_workload, optional

    return check_workload(await optional(access, "/apis/apps/v1/namespaces/kube-system/deployments/coredns"),
                          "coredns")


CHECKS: list[tuple[str, Check]] = [
    ("all nodes' API to answer", _version),
    ("all nodes to finish booting", _booted),
    ("time to be in sync", _time),
    ("etcd to be healthy on every control plane", _etcd_healthy),
    ("etcd members to be consistent across nodes", _etcd_consistent),
    ("etcd members to be the control-plane nodes", _etcd_members_are_cps),
    ("no failed services", _services),
    ("every node to be a cluster member", _members_complete),
    ("all nodes to be ready", _ready),
    ("all k8s nodes to report ready", _kube_check(_k8s_nodes)),
    ("all control plane static pods to be running", _kube_check(_k8s_static_pods)),
    ("kube-proxy to report ready", _kube_check(_k8s_kube_proxy)),
    ("coredns to report ready", _kube_check(_k8s_coredns)),
]


class Status(enum.Enum):
    """Where a check is (the values of ``ClusterHealthCheckResponse.Status``)."""

    RUNNING = 0
    OK = 1
    FAILED = 2


DISCOVERY = "discover nodes"
"""The pseudo-check whose OK event carries the discovered nodes."""


@dataclass(frozen=True)
class HealthEvent:
    check: str
    status: Status
    message: str = ""


def line(event: HealthEvent) -> str:
    """The line kosctl prints for an event."""
    if event.check == DISCOVERY:
        return f"discovered nodes: {event.message}"
    if event.status is Status.OK:
        return f"waiting for {event.check}: OK" + (f" ({event.message})" if event.message else "")
    if event.status is Status.FAILED:
        return f"waiting for {event.check}: FAILED ({event.message})"
    return f"waiting for {event.check}: {event.message}"


def discovery_event(nodes: ClusterNodes) -> HealthEvent:
    return HealthEvent(DISCOVERY, Status.OK, f"control planes {', '.join(nodes.control_planes)}; "
                                             f"workers {', '.join(nodes.workers) or 'none'}")


async def health_events(
    conn: Any,
    nodes: ClusterNodes,
    *,
    timeout: float,
    poll: float = 1.0,
    checks: Sequence[tuple[str, Check]] = CHECKS,
) -> AsyncGenerator[HealthEvent, None]:
    """Run every check until it passes: a RUNNING event whenever its reason to wait changes,
    then OK; FAILED (and the end) when the timeout runs out first."""
    import anyio

    deadline = time.monotonic() + timeout
    for title, check in checks:
        last = ""
        while True:
            try:
                note = await check(conn, nodes)
            except CheckFailed as exc:
                if str(exc) != last:
                    yield HealthEvent(title, Status.RUNNING, str(exc))
                    last = str(exc)
                if time.monotonic() >= deadline:
                    yield HealthEvent(title, Status.FAILED, "timeout")
                    return
                await anyio.sleep(poll)
                continue
            yield HealthEvent(title, Status.OK, note or "")
            break


async def run_checks(
    conn: Any,
    nodes: ClusterNodes,
    *,
    timeout: float,
    out: Callable[[str], None] = print,
    poll: float = 1.0,
) -> bool:
    """Run every check until it passes; False (after printing why) on the first that does not."""
    from contextlib import aclosing

    async with aclosing(health_events(conn, nodes, timeout=timeout, poll=poll)) as events:
        async for event in events:
            out(line(event))
            if event.status is Status.FAILED:
                return False
    return True


class DiscoveryError(Exception):
    """The nodes could not be discovered from Members (the message says what to give instead)."""


async def discovered_nodes(conn: Any, node: str | None) -> ClusterNodes:
    """The nodes from cluster discovery (``Members`` of ``node``, or of the endpoint's node):
    control planes and workers by their first address."""
    from kos.apis.client.connection import APIError
    from kos.apis.client.state import GrpcState
    from kos.resources.cluster import MEMBERS
    from kos.resources.config import is_control_plane

    try:
        members = await GrpcState(conn, node=node).list(MEMBERS)
    except APIError as exc:
        raise DiscoveryError(f"discovering the nodes (Members): {exc}; give --control-plane-nodes") from None
    cps = [m.spec.addresses[0] for m in members if m.spec.addresses and is_control_plane(m.spec.machine_type)]
    workers = [m.spec.addresses[0] for m in members if m.spec.addresses and m.spec.machine_type == "worker"]
    if not cps:
        raise DiscoveryError("no control-plane member discovered: give --control-plane-nodes or --cluster")
    return ClusterNodes(cps, workers)


def to_response(event: HealthEvent) -> Any:
    """The ``ClusterHealthCheckResponse`` of an event."""
    from kos.apis.gen.kos import machine as pb

    return pb.ClusterHealthCheckResponse(check=event.check, status=pb.ClusterHealthCheckResponseStatus(
        event.status.value), message=event.message)


def from_response(resp: Any) -> HealthEvent:
    """The event of a ``ClusterHealthCheckResponse`` (an unknown status reads as RUNNING)."""
    try:
        status = Status(int(resp.status))
    except ValueError:
        status = Status.RUNNING
    return HealthEvent(resp.check, status, resp.message)
