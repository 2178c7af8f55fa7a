"""The Kubernetes part of the cluster health checks (what talosctl checks after etcd):

* every kos node is a Kubernetes Node (matched by its address) and reports ``Ready``;
* the control-plane static pods (kube-apiserver, kube-controller-manager, kube-scheduler) are
  running and ready on every control plane;
* kube-proxy (DaemonSet) and CoreDNS (Deployment) are ready, unless the config leaves them out.

The checks read the Kubernetes API as ``admin`` (the ``KubernetesCerts`` the first control
plane issued, read over the State API, so ``os:admin`` only) at the cluster endpoint, or at
``ClusterNodes.kube_endpoint`` when the caller knows a better way in (a namespace cluster's
forwarded port). A pod that cannot get its image (``ErrImagePull``, ``ImagePullBackOff``...)
is named with the image in the failure, so a missing image never hides behind "not ready".

When the kubelet cannot run because its binary is not installed (the first control plane's
``kubelet`` service waits for it), the checks pass with a note saying so.
"""

from __future__ import annotations

import http.client
import json
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

MAX_BODY = 16 << 20
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


class KubeError(Exception):
    pass


@dataclass
class KubeAccess:
    url: str
    ca: str
    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca)
        with tempfile.TemporaryDirectory() as d:  # load_cert_chain reads files only
            cert, key = Path(d, "c.pem"), Path(d, "k.pem")
            cert.write_text(self.cert)
            key.touch(mode=0o600)
            key.write_text(self.key)
            ctx.load_cert_chain(cert, key)
        return ctx

    def _get(self, path: str) -> Any:
        u = urlsplit(self.url)
        conn = http.client.HTTPSConnection(u.hostname or "", u.port or 443, context=self.context(), timeout=10)
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            body = resp.read(MAX_BODY + 1)
        finally:
            conn.close()
        if len(body) > MAX_BODY:
            raise KubeError(f"GET {path}: answer larger than {MAX_BODY} bytes")
        if resp.status != 200:
            raise KubeError(f"GET {path}: HTTP {resp.status}: {body[:300].decode(errors='replace')}")
        return json.loads(body)

    async def get(self, path: str) -> Any:
        try:
            return await anyio.to_thread.run_sync(self._get, path)
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
            raise KubeError(f"Kubernetes API {self.url}: {exc}") from None


async def kube_access(conn: Any, node: str, endpoint: str | None) -> KubeAccess:
    from kos.apis.client.state import GrpcState
    from kos.resources.secrets import K8S_CERTS, K8S_CERTS_ID

    spec = (await GrpcState(conn, node=node).get(K8S_CERTS.pointer(K8S_CERTS_ID))).spec
    if not spec.admin_cert:
        raise KubeError(f"{node}: no Kubernetes admin certificate yet")
    return KubeAccess(endpoint or spec.endpoint, spec.ca_cert, spec.admin_cert, spec.admin_key)


def is_ready(obj: dict[str, Any]) -> bool:
    """A Kubernetes object (a Node, a Pod) whose ``Ready`` condition is ``True``."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def image_problems(pods: list[dict[str, Any]]) -> list[str]:
    """``pod <ns>/<name> on <node>: image <ref>: <reason>`` for every container that cannot
    get its image."""
    out = []
    for p in pods:
        spec_images = {c["name"]: c.get("image", "") for c in
                       [*p.get("spec", {}).get("containers", []), *p.get("spec", {}).get("initContainers", [])]}
        st = p.get("status", {})
        for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_REASONS:
                m = p["metadata"]
                image = spec_images.get(cs.get("name", ""), cs.get("image", ""))
                out.append(f"pod {m['namespace']}/{m['name']} on {p['spec'].get('nodeName', '?')}: "
                           f"image {image} is not present and cannot be pulled ({waiting['reason']})")
    return out


def node_addresses(node: dict[str, Any]) -> set[str]:
    return {a.get("address", "") for a in node.get("status", {}).get("addresses") or []}


def check_nodes(nodes: list[dict[str, Any]], want: list[str]) -> str:
    """All wanted node addresses are Ready Nodes; raises KubeError naming the others."""
    by_addr = {a: n for n in nodes for a in node_addresses(n)}
    missing = [a for a in want if a not in by_addr]
    not_ready = [f"{by_addr[a]['metadata']['name']} ({a})" for a in want if a in by_addr and not is_ready(by_addr[a])]
    if missing or not_ready:
        parts = []
        if missing:
            parts.append(f"no Node for {', '.join(missing)}")
        if not_ready:
            parts.append(f"not Ready: {', '.join(not_ready)}")
        raise KubeError("; ".join(parts))
    return f"{len(want)} nodes Ready"


def check_static_pods(pods: list[dict[str, Any]], cp_nodes: list[str]) -> str:
    by_name = {p["metadata"]["name"]: p for p in pods}
    bad = []
    for node in cp_nodes:
        for comp in CONTROL_PLANE_PODS:
            p = by_name.get(f"{comp}-{node}")
            if p is None:
                bad.append(f"{comp} on {node}: no pod")
            elif p.get("status", {}).get("phase") != "Running" or not is_ready(p):
                bad.append(f"{comp} on {node}: {p.get('status', {}).get('phase', '?')}, not ready")
    if bad:
        raise KubeError("; ".join(bad))
    return f"{len(cp_nodes) * len(CONTROL_PLANE_PODS)} static pods ready"


def check_workload(obj: dict[str, Any] | None, what: str) -> str:
    if obj is None:
        return f"{what}: not deployed"
    st = obj.get("status", {})
    if obj["kind"] == "DaemonSet":
        want, ready = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
    else:
        want, ready = obj.get("spec", {}).get("replicas", 1), st.get("readyReplicas", 0)
    if not want or ready < want:
        raise KubeError(f"{what}: {ready}/{want} ready")
    return f"{what}: {ready}/{want} ready"


async def optional(access: KubeAccess, path: str) -> dict[str, Any] | None:
    try:
        got: dict[str, Any] = await access.get(path)
        return got
    except KubeError as exc:
        if "HTTP 404" in str(exc):
            return None
        raise
