"""The Node object's labels, annotations and taints, as the config says (as Talos's node
label/annotation/taint specs and NodeApplyController).

* ``node_labels``/``node_annotations``/``node_taints``: pure renders of the config into
  ``NodeLabelSpecs`` (``machine.nodeLabels`` plus ``node-role.kubernetes.io/control-plane`` on
  control planes), ``NodeAnnotationSpecs`` (``machine.nodeAnnotations``) and ``NodeTaintSpecs``
  (``machine.nodeTaints`` plus the control-plane taint unless
  ``cluster.allowSchedulingOnControlPlanes``; the kubelet also registers with these).
* ``NodeApplyController``: those specs -> a server-side apply (field manager ``kos-node``) of
  the registered Node object -> ``NodeApplyStatuses``. A label, annotation or taint removed
  from the config is removed from the Node by the apply (the field manager owned it). On a
  control plane the identity is the admin certificate against the local API server; on a worker
  it is the kubelet's own client certificate against the cluster endpoint, which the API
  server's NodeRestriction lets change only unrestricted labels and annotations of its own Node
  (restricted labels and taints are left to the kubelet's registration and said so in the
  status). Until credentials exist or the Node is registered, it retries every
  ``retry_interval`` seconds (with one TLS context kept while the credentials stay the same).
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import Sequence
from typing import Any

import anyio

from kos.controllers.k8s.apiclient import APIError, KubeClient, tls_context
from kos.controllers.k8s.kubelet import CONTROL_PLANE_TAINT, node_taints
from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.resources.config import MACHINE_TYPE_ID, MachineTypeSpec, is_control_plane
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Phase, Pointer, Resource, Spec
from kos.resources.k8s import (
    APISERVER_CONFIGS,
    APISERVER_ID,
    NAMESPACE,
    NODE_ANNOTATION_SPECS,
    NODE_APPLY_STATUSES,
    NODE_LABEL_SPECS,
    NODE_TAINT_SPECS,
    NODENAME_ID,
    NODENAMES,
    NodeAnnotationSpecSpec,
    NodeApplyStatusSpec,
    NodeLabelSpecSpec,
    NodeTaintSpecSpec,
)
from kos.resources.machineconfig import ConfigContainer
from kos.resources.secrets import K8S_CERTS, K8S_CERTS_ID, K8S_ROOT, K8S_ROOT_ID

FIELD_MANAGER = "kos-node"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
KUBELET_CLIENT_PEM = "var/lib/kubelet/pki/kubelet-client-current.pem"
MACHINE_TYPE = Pointer(CONFIG_NS, MachineTypeSpec.definition.type, MACHINE_TYPE_ID)

# labels a kubelet may set on its own Node (NodeRestriction); other *kubernetes.io/*k8s.io keys it may not
_NODE_ALLOWED = ("kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os", "node.kubernetes.io/instance-type",
                 "topology.kubernetes.io/region", "topology.kubernetes.io/zone")
_NODE_ALLOWED_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/", "beta.kubernetes.io/")


def _control_plane(c: ConfigContainer) -> bool:
    return is_control_plane(c.machine_type)


def node_labels(c: ConfigContainer) -> dict[str, Spec]:
    labels = dict(c.config.machine.node_labels)
    if _control_plane(c):
        labels.setdefault(CONTROL_PLANE_LABEL, "")
    return {k: NodeLabelSpecSpec(key=k, value=v) for k, v in labels.items()}


def node_annotations(c: ConfigContainer) -> dict[str, Spec]:
    return {k: NodeAnnotationSpecSpec(key=k, value=v) for k, v in c.config.machine.node_annotations.items()}


def node_taints_specs(c: ConfigContainer) -> dict[str, Spec]:
    out: dict[str, Spec] = {}
    for key, text in node_taints(c.config).items():
        value, _, effect = text.rpartition(":")
        if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"machine.nodeTaints.{key}: {text!r} is invalid, expected value:Effect with Effect "
                             "NoSchedule, PreferNoSchedule or NoExecute")
        out[key] = NodeTaintSpecSpec(key=key, value=value, effect=effect)
    return out


def kubelet_may_set(label: str) -> bool:
    domain = label.partition("/")[0] if "/" in label else ""
    restricted = domain.endswith("kubernetes.io") or domain.endswith("k8s.io")
    return not restricted or label in _NODE_ALLOWED or label.startswith(_NODE_ALLOWED_PREFIXES)


def node_object(name: str, labels: dict[str, str], annotations: dict[str, str],
                taints: list[NodeTaintSpecSpec] | None) -> dict[str, Any]:
    """The server-side apply body (only what kos manages; ``taints`` None leaves them alone)."""
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Node",
                           "metadata": {"name": name, "labels": labels, "annotations": annotations}}
    if taints is not None:
        obj["spec"] = {"taints": [{"key": t.key, "effect": t.effect, **({"value": t.value} if t.value else {})}
                                  for t in taints]}
    return obj


class NodeApplyController(Controller):
    name = "system.NodeApplyController"

    def __init__(self, *, root: str = "/", api_url: str | None = None, retry_interval: float = 15.0) -> None:
        self.root = root
        self.api_url = api_url
        self.retry_interval = retry_interval
        # one TLS context while the credentials stay the same: building one (PEM files written
        # and parsed) at every retry was most of this controller's cost on an idle node
        self._tls: tuple[tuple[str, str, str], ssl.SSLContext] | None = None

    def inputs(self) -> Sequence[Input]:
        return (Input(NODE_LABEL_SPECS.namespace, NODE_LABEL_SPECS.type, None, InputKind.WEAK),
                Input(NODE_ANNOTATION_SPECS.namespace, NODE_ANNOTATION_SPECS.type, None, InputKind.WEAK),
                Input(NODE_TAINT_SPECS.namespace, NODE_TAINT_SPECS.type, None, InputKind.WEAK),
                Input(NODENAMES.namespace, NODENAMES.type, NODENAME_ID),
                Input(MACHINE_TYPE.namespace, MACHINE_TYPE.type, MACHINE_TYPE_ID),
                Input(K8S_CERTS.namespace, K8S_CERTS.type, K8S_CERTS_ID),
                Input(K8S_ROOT.namespace, K8S_ROOT.type, K8S_ROOT_ID),
                Input(APISERVER_CONFIGS.namespace, APISERVER_CONFIGS.type, APISERVER_ID))

    def outputs(self) -> Sequence[Output]:
        return (Output(NODE_APPLY_STATUSES.type, OutputKind.EXCLUSIVE),)

    async def run(self, rt: ControllerRuntime) -> None:
        pending = False
        while True:
            with anyio.move_on_after(self.retry_interval if pending else math.inf):
                await rt.wait()
            pending = await self.reconcile(rt)
            rt.reset_restart_backoff()

    async def _spec(self, rt: ControllerRuntime, ptr: Pointer) -> Any:
        r = await rt.get_or_none(ptr)
        return r.spec if r is not None and r.metadata.phase == Phase.RUNNING else None

    async def _credentials(self, rt: ControllerRuntime, control_plane: bool) -> tuple[str, str, str, str, str] | str:
        """(server, ca, cert, key, identity) or why there are none yet."""
        if control_plane:
            certs = await self._spec(rt, K8S_CERTS.pointer(K8S_CERTS_ID))
            if certs is None or not certs.admin_cert:
                return "no admin client certificate (KubernetesCerts k8s-certs) yet"
            api = await self._spec(rt, APISERVER_CONFIGS.pointer(APISERVER_ID))
            port = api.port if api is not None and api.port else 6443  # the local API server
            server = self.api_url or f"https://127.0.0.1:{port}"
            return server, certs.ca_cert, certs.admin_cert, certs.admin_key, "admin"
        root = await self._spec(rt, K8S_ROOT.pointer(K8S_ROOT_ID))
        if root is None or not root.ca_cert or not root.endpoint:
            return "no Kubernetes CA and endpoint (KubernetesRootSecrets k8s) yet"
        path = os.path.join(self.root, KUBELET_CLIENT_PEM)
        try:
            pem = await anyio.Path(path).read_text()
        except OSError:
            return f"the kubelet has no client certificate yet (/{KUBELET_CLIENT_PEM})"
        cert = "".join(b for b in _pem_blocks(pem) if "CERTIFICATE" in b)
        key = "".join(b for b in _pem_blocks(pem) if "PRIVATE KEY" in b)
        return self.api_url or root.endpoint, root.ca_cert, cert, key, "kubelet"

    async def reconcile(self, rt: ControllerRuntime) -> bool:
        """Apply; returns whether to try again later."""
        nodename = await self._spec(rt, NODENAMES.pointer(NODENAME_ID))
        labels = {r.spec.key: r.spec.value for r in await rt.list(NODE_LABEL_SPECS)
                  if r.metadata.phase == Phase.RUNNING}
        annotations = {r.spec.key: r.spec.value for r in await rt.list(NODE_ANNOTATION_SPECS)
                       if r.metadata.phase == Phase.RUNNING}
        taints = [r.spec for r in await rt.list(NODE_TAINT_SPECS) if r.metadata.phase == Phase.RUNNING]
        if nodename is None or not nodename.nodename or nodename.skip_node_registration:
            for st in await rt.list(NODE_APPLY_STATUSES):
                if st.metadata.owner == self.name:
                    await rt.destroy(st.pointer)
            return False
        name = nodename.nodename
        mt = await self._spec(rt, MACHINE_TYPE)
        control_plane = mt is not None and bool(mt.is_control_plane)
        creds = await self._credentials(rt, control_plane)
        status = NodeApplyStatusSpec(labels=sorted(labels), annotations=sorted(annotations),
                                     taints=sorted(f"{t.key}={t.value}:{t.effect}" for t in taints))
        if isinstance(creds, str):
            status.error = creds
        else:
            server, ca, cert, key, identity = creds
            status.identity = identity
            apply_taints: list[NodeTaintSpecSpec] | None = taints
            skipped: list[str] = []
            if identity == "kubelet":  # NodeRestriction: the node's own identity cannot set these
                skipped = sorted(k for k in labels if not kubelet_may_set(k))
                labels = {k: v for k, v in labels.items() if kubelet_may_set(k)}
                apply_taints = None
                status.labels = sorted(labels)
            status.error = await self._apply(server, ca, cert, key, node_object(name, labels, annotations,
                                                                                 apply_taints))
            status.applied = not status.error
            if status.applied and (skipped or (taints and apply_taints is None)):
                status.error = ("as the kubelet (NodeRestriction), left to the kubelet's registration: "
                                + ", ".join([*skipped, *(["taints"] if taints else [])]))

        def fill(r: Resource[Any], s: NodeApplyStatusSpec = status) -> None:
            r.spec = s

        await rt.modify(Resource.new(NodeApplyStatusSpec(), name, namespace=NAMESPACE), fill)
        for st in await rt.list(NODE_APPLY_STATUSES):
            if st.metadata.owner == self.name and st.metadata.id != name:
                await rt.destroy(st.pointer)
        return not status.applied

    async def _apply(self, server: str, ca: str, cert: str, key: str, obj: dict[str, Any]) -> str:
        """'' when applied, else why not."""
        import yaml

        name = obj["metadata"]["name"]
        try:
            if self._tls is None or self._tls[0] != (ca, cert, key):
                self._tls = ((ca, cert, key), await anyio.to_thread.run_sync(tls_context, ca, cert, key))
            client = KubeClient(server, self._tls[1])
            status, _ = await client.request("GET", f"/api/v1/nodes/{name}")
            if status == 404:
                return f"Node {name!r} is not registered yet"
            if status >= 300:
                return f"GET Node {name!r}: HTTP {status}"
            body = yaml.safe_dump(obj, sort_keys=False).encode()
            status, payload = await client.request(
                "PATCH", f"/api/v1/nodes/{name}?fieldManager={FIELD_MANAGER}&force=true", body=body,
                content_type="application/apply-patch+yaml")
            if status >= 300:
                return f"apply Node {name!r}: HTTP {status}: {payload.decode(errors='replace')[:300]}"
        except (APIError, OSError, ValueError, TimeoutError) as exc:
            return f"{server}: {exc}"
        return ""


def _pem_blocks(text: str) -> list[str]:
    out, cur = [], []
    for line in text.splitlines(keepends=True):
        cur.append(line)
        if line.startswith("-----END"):
            out.append("".join(cur))
            cur = []
    return out


__all__ = ["CONTROL_PLANE_LABEL", "CONTROL_PLANE_TAINT", "NodeApplyController", "kubelet_may_set", "node_annotations",
           "node_labels", "node_object", "node_taints_specs"]
