"""The runner of ``kosctl upgrade-k8s``: reads every node's machine config over the machine API,
plans with ``kos.apis.kosctl.k8splan``, checks, then applies the plan one node at a time and
waits on the Kubernetes API (as ``admin``, ``kos.apis.client.kubecheck.KubeAccess``) for each
step to take effect, printing talosctl-style progress lines through ``out``.

Checks before anything changes: the target is one minor release at most ahead of the oldest
component and older than none (``k8splan.check_skew``); every node holds the target release
(an ApplyConfiguration dry run of the node's whole share of the plan: the node refuses a
version it has no release of with FAILED_PRECONDITION naming the versions it has); every node
is a Ready Node and the control-plane static pods are ready (waiting up to ``HEALTH_WAIT``).
``dry_run`` stops there and
prints the plan.

Then: per control plane, the three static pod images in one no-reboot apply, waiting until
its kube-apiserver, kube-controller-manager and kube-scheduler pods run the new image and are
Ready (and /version reports the target); kube-proxy's image on every control plane, waiting
for the DaemonSet rollout; per node, control planes first, the kubelet's image, waiting until
the Node reports the new kubeletVersion and Ready (on a control plane, until its static pods,
which the new kubelet recreates, are ready again). A step whose fields are already at the
target is not applied but still waited for, so running the command again resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from kos.apis.kosctl import k8splan as kp
from kos.resources.k8sversion import CONTROL_PLANE_FIELDS, PROXY_FIELD, KubeVersion, with_tag

Out = Callable[[str], None]
POLL = 2.0
HEALTH_WAIT = 180.0
"""How long the health check before any change may wait (an interrupted upgrade's pods may
still be restarting when it is run again)."""


class UpgradeError(Exception):
    """The upgrade stopped (the message says where and what to do next)."""


@dataclass
class Options:
    to: KubeVersion
    from_version: KubeVersion | None = None
    dry_run: bool = False
    kubelet: bool = True
    wait_timeout: float = 300.0
    control_planes: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    kube_endpoint: str | None = None


@dataclass
class Cluster:
    """What the runner works with: the connection, the nodes' configs, the Kubernetes API."""

    conn: Any
    nodes: list[kp.NodeConfig]
    access: Any  # KubeAccess
    out: Out
    timeout: float
    names: dict[str, str] = field(default_factory=dict)  # node address -> Kubernetes Node name


def _resume_hint(to: KubeVersion) -> str:
    return f"fix that, then run kosctl upgrade-k8s --to {to} again to resume"


async def node_config(conn: Any, address: str) -> tuple[str, kp.NodeConfig]:
    """The node's config text and its versioned fields."""
    from kos.apis.kosctl.commands.edit import current_config
    from kos.resources.config import is_control_plane
    from kos.resources.k8sversion import configured_images
    from kos.resources.machineconfig import ConfigContainer, ConfigErrors

    text = await current_config(conn, address)
    try:
        cfg = ConfigContainer.load(text, strict=False).v1alpha1
    except ConfigErrors as exc:
        raise UpgradeError(f"{address}: its machine config does not load here: {exc}") from None
    if cfg is None:
        raise UpgradeError(f"{address}: its machine config has no v1alpha1 document")
    return text, kp.NodeConfig(address, is_control_plane(cfg.machine_type), configured_images(cfg),
                               bool(cfg.cluster.proxy.disabled))


def patched(text: str, step: kp.Step) -> bytes:
    from kos.apis.kosctl.commands.edit import patch_text
    from kos.resources.machineconfig import parse_patch

    return patch_text(text, [parse_patch(json.dumps(step.patch()), source="upgrade-k8s")]).encode()


async def apply(conn: Any, address: str, data: bytes, *, dry_run: bool) -> Any:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb
    from kos.apis.kosctl.commands.edit import MODES

    req = pb.ApplyConfigurationRequest(data=data, mode=pb.ApplyConfigurationRequestMode(MODES["no-reboot"]),
                                       dry_run=dry_run)
    return pb.ApplyConfigurationResponse().parse(
        await conn.unary(auth.MACHINE + "ApplyConfiguration", bytes(req), node=address))


async def wait_for(c: Cluster, label: str, what: str, probe: Callable[[], Awaitable[tuple[bool, str]]],
                   to: KubeVersion) -> None:
    """Poll ``probe`` (-> (done, state)) until done, printing each new state; UpgradeError on timeout."""
    from kos.apis.client.kubecheck import KubeError

    deadline = time.monotonic() + c.timeout
    last = ""
    while True:
        try:
            ok, state = await probe()
        except KubeError as exc:
            ok, state = False, f"Kubernetes API not answering ({str(exc)[:200]})"
        if ok:
            return
        if state != last:
            c.out(f" > {label}: {state}")
            last = state
        if time.monotonic() > deadline:
            raise UpgradeError(f"{label}: {what} not within {c.timeout:.0f} s (last: {state}); {_resume_hint(to)}")
        await anyio.sleep(POLL)


async def _node_names(c: Cluster) -> dict[str, str]:
    from kos.apis.client.kubecheck import node_addresses

    items = (await c.access.get("/api/v1/nodes"))["items"]
    out = {}
    for n in c.nodes:
        match = [i["metadata"]["name"] for i in items if n.address in node_addresses(i)]
        if match:
            out[n.address] = match[0]
    return out


def static_pod_probe(c: Cluster, node: str, component: str, image: str) -> Callable[[], Awaitable[tuple[bool, str]]]:
    async def probe() -> tuple[bool, str]:
        from kos.apis.client.kubecheck import image_problems, is_ready, optional

        pod = await optional(c.access, f"/api/v1/namespaces/kube-system/pods/{component}-{c.names[node]}")
        if pod is None:
            return False, f"{component}: waiting, no pod yet"
        running = [x.get("image", "") for x in pod.get("spec", {}).get("containers", [])]
        if image not in running:
            return False, f"{component}: waiting, the pod runs {', '.join(running) or '?'}"
        problems = image_problems([pod])
        if problems:
            return False, f"{component}: waiting, {problems[0]}"
        phase = pod.get("status", {}).get("phase", "?")
        if phase != "Running" or not is_ready(pod):
            return False, f"{component}: waiting, pod {phase}, not ready"
        return True, "ready"

    return probe


def version_probe(c: Cluster, to: KubeVersion) -> Callable[[], Awaitable[tuple[bool, str]]]:
    async def probe() -> tuple[bool, str]:
        got = (await c.access.get("/version")).get("gitVersion", "?")
        return got == str(to), f"kube-apiserver: /version reports {got}"

    return probe


def proxy_probe(c: Cluster, image: str) -> Callable[[], Awaitable[tuple[bool, str]]]:
    async def probe() -> tuple[bool, str]:
        from kos.apis.client.kubecheck import optional

        ds = await optional(c.access, "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
        if ds is None:
            return False, "waiting, no DaemonSet"
        images = [x.get("image", "") for x in ds["spec"]["template"]["spec"].get("containers", [])]
        if image not in images:
            return False, f"waiting, the DaemonSet runs {', '.join(images)}"
        st = ds.get("status", {})
        want = st.get("desiredNumberScheduled", 0)
        updated, available = st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0)
        done = (st.get("observedGeneration", 0) >= ds["metadata"].get("generation", 0) and want > 0
                and updated == want and available == want and not st.get("numberUnavailable"))
        return done, f"rolling out, {updated}/{want} updated, {available}/{want} available"

    return probe


def kubelet_probe(c: Cluster, node: str, to: KubeVersion) -> Callable[[], Awaitable[tuple[bool, str]]]:
    async def probe() -> tuple[bool, str]:
        from kos.apis.client.kubecheck import is_ready, optional

        obj = await optional(c.access, f"/api/v1/nodes/{c.names[node]}")
        if obj is None:
            return False, f"waiting for Node {c.names[node]}"
        got = obj.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "?")
        if got != str(to):
            return False, f"waiting for node update (kubelet {got})"
        if not is_ready(obj):
            return False, "waiting for node to be Ready"
        return True, "kubelet is ready"

    return probe


# -- the phases -------------------------------------------------------------------------------
async def _step(c: Cluster, step: kp.Step, to: KubeVersion) -> None:
    """Re-read the node's config, apply the step's patch to it (no-reboot)."""
    from kos.apis.client import APIError

    label = step.node
    c.out(f" > {label}: starting update")
    if not step.fields:
        c.out(f" > {label}: already at {to}: nothing to patch")
        return
    for line in kp.describe(step):
        c.out(f" > {line}")
    text, _ = await node_config(c.conn, step.node)
    try:
        await apply(c.conn, step.node, patched(text, step), dry_run=False)
    except APIError as exc:
        raise UpgradeError(f"{label}: applying the {step.phase} update: {exc}; {_resume_hint(to)}") from None
    c.out(f" > {label}: machine configuration patched")


async def control_plane(c: Cluster, steps: list[kp.Step], to: KubeVersion) -> None:
    for step in steps:
        node = next(n for n in c.nodes if n.address == step.node)
        c.out(f"updating control plane on {step.node} to version {to}")
        await _step(c, step, to)
        for path, component in CONTROL_PLANE_FIELDS.items():
            image = step.fields.get(path, (node.images[path], node.images[path]))[1]
            c.out(f" > {step.node}: waiting for {component} pod update")
            await wait_for(c, step.node, f"{component} running {image} and ready",
                           static_pod_probe(c, step.node, component, image), to)
            c.out(f" > {step.node}: {component}: pod is ready")
    if steps:
        await wait_for(c, "kube-apiserver", f"/version reporting {to}", version_probe(c, to), to)
        c.out(f" > kube-apiserver: /version reports {to}")


async def kube_proxy(c: Cluster, steps: list[kp.Step], to: KubeVersion) -> None:
    if not steps:
        return
    c.out(f"updating kube-proxy to version {to}")
    image = ""
    for step in steps:
        node = next(n for n in c.nodes if n.address == step.node)
        image = step.fields.get(PROXY_FIELD, (node.images[PROXY_FIELD], node.images[PROXY_FIELD]))[1]
        await _step(c, step, to)
    c.out(" > waiting for the kube-proxy DaemonSet rollout")
    await wait_for(c, "kube-proxy", f"the DaemonSet rolled out with {image}", proxy_probe(c, image), to)
    c.out(" > kube-proxy: rolled out")


async def kubelets(c: Cluster, steps: list[kp.Step], to: KubeVersion) -> None:
    if not steps:
        return
    c.out(f"updating kubelet to version {to}")
    for step in steps:
        await _step(c, step, to)
        if step.fields:
            c.out(f" > {step.node}: waiting for kubelet restart")
        await wait_for(c, step.node, f"the Node reporting kubelet {to} and Ready", kubelet_probe(c, step.node, to), to)
        c.out(f" > {step.node}: kubelet is ready")
        node = next(n for n in c.nodes if n.address == step.node)
        if node.control_plane:  # the new kubelet recreates the static pods: the control plane is back first
            c.out(f" > {step.node}: waiting for the control-plane pods after the kubelet restart")
            for path, component in CONTROL_PLANE_FIELDS.items():
                image = with_tag(node.images[path], str(to))
                await wait_for(c, step.node, f"{component} running {image} and ready",
                               static_pod_probe(c, step.node, component, image), to)
            c.out(f" > {step.node}: control-plane pods are ready")


# -- checks -----------------------------------------------------------------------------------
async def check_available(c: Cluster, steps: list[kp.Step], to: KubeVersion) -> None:
    """Each node's whole share of the plan as an ApplyConfiguration dry run: the node refuses a
    Kubernetes version it does not hold (FAILED_PRECONDITION), before anything changes."""
    from kos.apis.client import APIError

    merged: dict[str, kp.Step] = {}
    for s in steps:
        prev = merged.get(s.node)
        merged[s.node] = kp.Step("all", s.node, {**(prev.fields if prev else {}), **s.fields})
    problems = []
    for address, step in merged.items():
        if not step.fields:
            continue
        text, _ = await node_config(c.conn, address)
        try:
            await apply(c.conn, address, patched(text, step), dry_run=True)
        except APIError as exc:
            problems.append(str(exc) if exc.node == address else f"{address}: {exc}")
    if problems:
        raise UpgradeError(f"Kubernetes {to} cannot run on every node (nothing was changed):\n  "
                           + "\n  ".join(problems))


async def check_healthy(c: Cluster, to: KubeVersion) -> None:
    from kos.apis.client.kubecheck import KubeError, check_nodes, check_static_pods

    async def probe() -> tuple[bool, str]:
        try:
            items = (await c.access.get("/api/v1/nodes"))["items"]
            check_nodes(items, [n.address for n in c.nodes])
            c.names.update(await _node_names(c))
            pods = (await c.access.get("/api/v1/namespaces/kube-system/pods"))["items"]
            check_static_pods(pods, [c.names[n.address] for n in c.nodes if n.control_plane])
        except KubeError as exc:
            return False, f"not healthy: {exc}"
        return True, "healthy"

    saved = c.timeout
    c.timeout = min(c.timeout, HEALTH_WAIT)
    try:
        await wait_for(c, "cluster", "every node Ready and the control-plane static pods ready", probe, to)
    except UpgradeError as exc:
        raise UpgradeError(f"the cluster is not healthy, nothing was changed: {exc}; see kosctl health") from None
    finally:
        c.timeout = saved


# -- the command ------------------------------------------------------------------------------
async def discover(conn: Any, opts: Options, out: Out) -> tuple[list[str], list[str]]:
    from kos.apis.client.health import DiscoveryError, discovered_nodes

    if opts.control_planes:
        return list(opts.control_planes), list(opts.workers)
    try:
        found = await discovered_nodes(conn, None)
    except DiscoveryError as exc:
        raise UpgradeError(str(exc)) from None
    return found.control_planes, found.workers


async def upgrade(conn: Any, opts: Options, out: Out) -> float:
    """The whole command; returns the seconds the upgrade itself took (0 for a dry run)."""
    from kos.apis.client import APIError
    from kos.apis.client.kubecheck import KubeError, kube_access

    cps, workers = await discover(conn, opts, out)
    out(f"discovered controlplane nodes {json.dumps(cps)}")
    out(f"discovered worker nodes {json.dumps(workers)}")
    nodes = []
    for address in [*cps, *workers]:
        _, n = await node_config(conn, address)
        nodes.append(n)
    cp_nodes = [n.address for n in nodes if n.control_plane]
    if not cp_nodes:
        raise UpgradeError("no control-plane node among the nodes given")
    try:
        lowest = opts.from_version or kp.lowest_version(nodes, kubelet=opts.kubelet)
        if opts.from_version is None:
            out(f"automatically detected the lowest Kubernetes version {lowest}")
        else:
            kp.check_from(lowest, nodes, kubelet=opts.kubelet)
        kp.check_skew(lowest, opts.to, nodes, kubelet=opts.kubelet)
    except kp.PlanError as exc:
        raise UpgradeError(str(exc)) from None
    try:
        access = await kube_access(conn, cp_nodes[0], opts.kube_endpoint)
    except (APIError, KubeError) as exc:
        raise UpgradeError(f"{cp_nodes[0]}: Kubernetes credentials: {exc}") from None
    c = Cluster(conn, nodes, access, out, opts.wait_timeout)
    steps = kp.plan(nodes, opts.to, kubelet=opts.kubelet)
    out(f"checking that every node holds Kubernetes {opts.to}")
    await check_available(c, steps, opts.to)
    out("checking the cluster's health")
    await check_healthy(c, opts.to)
    by_phase = {p: [s for s in steps if s.phase == p] for p in kp.PHASES}
    if opts.dry_run:
        out(f"dry run: the upgrade from {lowest} to {opts.to} would make these changes (none made):")
        for s in steps:
            lines = kp.describe(s) or [f"already at {opts.to}"]
            out(f" > {s.phase} on {s.node}: {'; '.join(lines)}")
        if not opts.kubelet:
            out(" > kubelets: left as they are (--no-upgrade-kubelet)")
        return 0.0
    started = time.monotonic()
    await control_plane(c, by_phase[kp.CONTROL_PLANE], opts.to)
    await kube_proxy(c, by_phase[kp.KUBE_PROXY], opts.to)
    if opts.kubelet:
        await kubelets(c, by_phase[kp.KUBELET], opts.to)
    else:
        out("kubelets left as they are (--no-upgrade-kubelet)")
    return time.monotonic() - started
