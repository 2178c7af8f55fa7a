"""A node leaving Kubernetes (graceful reset): cordon, drain, delete its Node, as Talos does.

``leave_kubernetes(kubeconfig, node)`` works with the kubelet's own credentials (the
kubeconfig the kubelet wrote after its TLS bootstrap), so a worker needs no admin key:

1. cordon: ``spec.unschedulable: true`` on its Node (the node may update its own Node);
2. drain: evict every pod bound to the node except mirror (static) pods and DaemonSet pods
   (``pods/eviction``, which NodeRestriction allows for the node's own pods), then wait up to
   ``timeout`` for them to be gone (pods still there then are logged, and the node leaves);
3. (the caller stops its kubelet, which would register the node again) delete its Node
   (``kos:node-self-delete`` in the bootstrap RBAC grants ``delete`` on nodes to
   ``system:nodes``; NodeRestriction limits it to the node's own object).

Each step is logged; a step that fails raises ``DrainError`` naming it (the reset sequence
logs it and goes on: a node that cannot reach its API server must still be resettable).
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import structlog
import yaml

from kos.controllers.k8s.apiclient import APIError, KubeClient

log = structlog.get_logger(__name__)


class DrainError(RuntimeError):
    pass


def _data(user: dict[str, Any], base: Path, key: str) -> bytes:
    if user.get(f"{key}-data"):
        return base64.b64decode(str(user[f"{key}-data"]))
    path = user.get(key)
    if not path:
        raise DrainError(f"kubeconfig: no {key} or {key}-data")
    return (base / str(path)).read_bytes()


def client_from_kubeconfig(path: Path, *, timeout: float = 10.0) -> KubeClient:
    """A KubeClient for the current context of a kubeconfig with client-certificate auth
    (blocking: reads files)."""
    doc = yaml.safe_load(path.read_text())
    ctx_name = doc.get("current-context")
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    base = path.parent
    ca = _data(cluster, base, "certificate-authority").decode()
    ssl_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca)
    with tempfile.TemporaryDirectory() as d:
        cert, key = Path(d, "c.pem"), Path(d, "k.pem")
        cert.write_bytes(_data(user, base, "client-certificate"))
        key.touch(mode=0o600)
        key.write_bytes(_data(user, base, "client-key"))
        ssl_ctx.load_cert_chain(cert, key)
    return KubeClient(cluster["server"], ssl_ctx, timeout=timeout)


def evictable(pod: dict[str, Any]) -> bool:
    """Not a mirror pod, not owned by a DaemonSet, not finished."""
    meta = pod.get("metadata", {})
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return False
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
        return False
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


async def _call(client: KubeClient, step: str, method: str, path: str, body: Any = None,
                content_type: str = "application/json", ok: tuple[int, ...] = ()) -> int:
    data = json.dumps(body).encode() if body is not None else b""
    try:
        status, payload = await client.request(method, path, body=data, content_type=content_type)
    except (OSError, TimeoutError, APIError) as exc:
        raise DrainError(f"{step}: {exc}") from None
    if status >= 300 and status not in ok:
        raise DrainError(f"{step}: HTTP {status}: {payload[:300].decode(errors='replace')}")
    return status


async def leave_kubernetes(kubeconfig: Path, node: str, *, timeout: float = 60.0,
                           before_delete: Callable[[], Awaitable[None]] | None = None) -> None:
    """Cordon, drain, (``before_delete``: stop the kubelet, which would register it again),
    delete the Node."""
    client = await anyio.to_thread.run_sync(client_from_kubeconfig, kubeconfig)
    npath = f"/api/v1/nodes/{quote(node)}"
    await _call(client, "cordon", "PATCH", npath, {"spec": {"unschedulable": True}},
                "application/strategic-merge-patch+json")
    log.info("node cordoned", node=node)
    deadline = time.monotonic() + timeout
    evicted: set[str] = set()
    while True:
        try:
            pods = (await client.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{quote(node)}"))["items"]
        except (OSError, TimeoutError, APIError) as exc:
            raise DrainError(f"drain: listing the node's pods: {exc}") from None
        left = [p for p in pods if evictable(p)]
        if not left:
            break
        if time.monotonic() > deadline:  # as Talos: a drain that times out does not stop the node leaving
            names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in left)
            log.warning("drain timed out: leaving anyway", node=node, timeout=timeout, pods=names[:2000])
            break
        for p in left:
            m = p["metadata"]
            key = f"{m['namespace']}/{m['name']}"
            if key in evicted:
                continue
            eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": m["name"], "namespace": m["namespace"]}}
            status = await _call(client, f"drain: evicting {key}", "POST",
                                 f"/api/v1/namespaces/{quote(m['namespace'])}/pods/{quote(m['name'])}/eviction",
                                 eviction, ok=(404, 429))
            if status != 429:  # 429: a disruption budget says not yet; try again
                evicted.add(key)
                log.info("pod evicted", node=node, pod=key)
        await anyio.sleep(1.0)
    log.info("node drained", node=node)
    if before_delete is not None:
        await before_delete()
    await _call(client, "delete node", "DELETE", npath, ok=(404,))
    log.info("node deleted from Kubernetes", node=node)
