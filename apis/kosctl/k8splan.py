"""The plan of ``kosctl upgrade-k8s``: pure functions from what the nodes' machine configs say
to the steps that move the cluster to another Kubernetes version (no I/O; the runner is
``kos.apis.kosctl.k8supgrade``).

* ``lowest_version(nodes)``: the oldest Kubernetes version any node's versioned field names
  (``--from auto``);
* ``check_skew(lowest, to, nodes)``: Kubernetes' version skew policy, one minor release at a
  time and no downgrade of any component (``PlanError`` saying what to do instead);
* ``ordered(nodes)``: control planes first, then workers, each by address;
* ``plan(nodes, to, ...)``: the ``Step`` list - per control plane, its three static pod images;
  then kube-proxy's image on every control plane; then each node's kubelet. A field already at
  the target is left out of its step (a step may change nothing: the runner still waits for
  what it covers), so running the command again resumes an interrupted upgrade.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kos.resources.k8sversion import (
    CONTROL_PLANE_FIELDS,
    KUBELET_FIELD,
    PROXY_FIELD,
    KubeVersion,
    image_version,
    with_tag,
)

CONTROL_PLANE = "control plane"
KUBE_PROXY = "kube-proxy"
KUBELET = "kubelet"
PHASES = (CONTROL_PLANE, KUBE_PROXY, KUBELET)


class PlanError(Exception):
    """The upgrade cannot go ahead (the message says why and what to do)."""


@dataclass(frozen=True)
class NodeConfig:
    """One node as its machine config shows it: address, role, the versioned fields' images
    (``kos.resources.k8sversion.configured_images``) and whether kube-proxy is disabled."""

    address: str
    control_plane: bool
    images: dict[str, str]
    proxy_disabled: bool = False


@dataclass(frozen=True)
class Step:
    """One ApplyConfiguration: ``fields`` (path -> (current image, target image)) on ``node``."""

    phase: str
    node: str
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)

    def patch(self) -> dict[str, object]:
        """The strategic-merge patch of the step (every field's target image)."""
        from kos.resources.k8sversion import field_patch

        out: dict[str, object] = {}
        for path, (_, new) in sorted(self.fields.items()):
            _merge(out, field_patch(path, new))
        return out


def _merge(into: dict[str, object], patch: dict[str, object]) -> None:
    for k, v in patch.items():
        cur = into.get(k)
        if isinstance(cur, dict) and isinstance(v, dict):
            _merge(cur, v)
        else:
            into[k] = v


def parse_target(text: str) -> KubeVersion:
    """``--to``: ``1.33.13`` or ``v1.33.13`` (ValueError naming the flag otherwise)."""
    try:
        return KubeVersion.parse(text)
    except ValueError as exc:
        raise PlanError(f"--to: {exc}") from None


def _address_key(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address)
        return (ip.version, int(ip), address)
    except ValueError:
        return (9, 0, address)


def ordered(nodes: Iterable[NodeConfig]) -> list[NodeConfig]:
    """Control planes first, then workers; each group by address (numerically for IPs)."""
    return sorted(nodes, key=lambda n: (not n.control_plane, _address_key(n.address)))


def versions_of(node: NodeConfig, *, kubelet: bool = True) -> dict[str, KubeVersion]:
    """Field -> version for the node's fields whose tag is a version (the control-plane fields
    and kube-proxy only on control planes: a worker runs neither)."""
    out = {}
    for path, image in node.images.items():
        if not node.control_plane and path != KUBELET_FIELD:
            continue
        if path == KUBELET_FIELD and not kubelet:
            continue
        if path == PROXY_FIELD and node.proxy_disabled:
            continue
        v = image_version(image)
        if v is not None:
            out[path] = v
    return out


def lowest_version(nodes: Sequence[NodeConfig], *, kubelet: bool = True) -> KubeVersion:
    """The oldest version any node runs (``--from auto``); PlanError when none names one."""
    found = [v for n in nodes for v in versions_of(n, kubelet=kubelet).values()]
    if not found:
        raise PlanError("no node's config names a Kubernetes version in its images: give --from")
    return min(found)


def check_from(given: KubeVersion, nodes: Sequence[NodeConfig], *, kubelet: bool = True) -> None:
    """``--from`` may not hide an older component: the skew counts from the oldest one."""
    older = sorted({(v, path, n.address) for n in nodes for path, v in versions_of(n, kubelet=kubelet).items()
                    if v < given})
    if older:
        v, path, addr = older[0]
        raise PlanError(f"--from {given}: {path} on {addr} runs {v}, older than that: give --from {v} or auto")


def check_skew(lowest: KubeVersion, to: KubeVersion, nodes: Sequence[NodeConfig], *, kubelet: bool = True) -> None:
    """One minor release at a time from the oldest component, and nothing moves backwards."""
    if to.major != lowest.major:
        raise PlanError(f"--to {to}: a different major release than the cluster's {lowest}: not supported")
    ahead = to.minors_from(lowest)
    if ahead > 1:
        step = KubeVersion(lowest.major, lowest.minor + 1, 0)
        raise PlanError(f"--to {to}: {ahead} minor releases ahead of {lowest}, the oldest component of the cluster; "
                        "Kubernetes' version skew policy allows one minor release at a time: upgrade to "
                        f"v{step.major}.{step.minor}.x first")
    newer = sorted({(str(v), path, n.address) for n in nodes for path, v in versions_of(n, kubelet=kubelet).items()
                    if v > to})
    if newer:
        what = "; ".join(f"{path} on {addr} is {v}" for v, path, addr in newer[:6])
        raise PlanError(f"--to {to}: older than what runs ({what}): downgrades are not supported")


def plan(nodes: Sequence[NodeConfig], to: KubeVersion, *, kubelet: bool = True) -> list[Step]:
    """The steps, in order (see the module docstring); a field already at ``to`` is left out."""
    tag = str(to)
    steps: list[Step] = []
    nodes = ordered(nodes)

    def changes(n: NodeConfig, paths: Iterable[str]) -> dict[str, tuple[str, str]]:
        out = {}
        for p in paths:
            cur = n.images[p]
            new = with_tag(cur, tag)
            if new != cur:
                out[p] = (cur, new)
        return out

    cps = [n for n in nodes if n.control_plane]
    for n in cps:
        steps.append(Step(CONTROL_PLANE, n.address, changes(n, CONTROL_PLANE_FIELDS)))
    for n in cps:
        if not n.proxy_disabled:
            steps.append(Step(KUBE_PROXY, n.address, changes(n, [PROXY_FIELD])))
    if kubelet:
        for n in nodes:
            steps.append(Step(KUBELET, n.address, changes(n, [KUBELET_FIELD])))
    return steps


def describe(step: Step) -> list[str]:
    """``update kube-apiserver: v1.32.13 -> v1.33.13`` lines of a step (talosctl's wording)."""
    out = []
    for path, (old, new) in sorted(step.fields.items()):
        name = CONTROL_PLANE_FIELDS.get(path) or (KUBE_PROXY if path == PROXY_FIELD else KUBELET)
        ov, nv = image_version(old), image_version(new)
        out.append(f"update {name}: {ov or old} -> {nv or new}")
    return out
