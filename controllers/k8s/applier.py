"""Bootstrap manifests: rendered on control planes, applied once an API server answers.

* ``ManifestController``: MachineConfig + MachineType (control planes) +
  KubernetesRootSecrets(k8s) -> Manifests(<id>) (``kos.controllers.k8s.manifests``).
* ``ManifestApplyController``: Manifests + KubernetesCerts(k8s-certs) (admin client cert, CA)
  + APIServerConfigs(kube-apiserver) (port) -> ManifestStatuses(manifests). When the local API
  server (``https://localhost:<port>`` unless ``api_url`` is given) answers, each group is
  server-side applied in id order (URL groups are fetched first); otherwise, or when a group
  fails, it stays listed as pending with the error, and the controller retries every
  ``retry_interval`` seconds. A group is re-applied only when its content changes.
"""

from __future__ import annotations

import hashlib
import math
import urllib.request
from collections.abc import Sequence
from typing import Any

import anyio

from kos.controllers.k8s import manifests as mf
from kos.controllers.k8s.apiclient import KubeClient, tls_context
from kos.controllers.k8s.base import (
    MACHINE_CONFIGS,
    MACHINE_TYPE_ID,
    MACHINE_TYPES,
    K8sController,
    is_control_plane,
    machine_container,
    running_spec,
)
from kos.controllers.k8s.kubelet import KUBEPRISM_DEFAULT_PORT
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output, OutputKind, set_spec
from kos.resources.config import ACTIVE_ID
from kos.resources.core import Resource
from kos.resources.k8s import (
    APISERVER_CONFIGS,
    APISERVER_ID,
    MANIFEST_STATUS_ID,
    MANIFEST_STATUSES,
    MANIFESTS,
    ManifestSpec,
    ManifestStatusSpec,
)
from kos.resources.machineconfig import load_manifests, views
from kos.resources.machineconfig.v1alpha1 import Config
from kos.resources.secrets import K8S_CERTS, K8S_CERTS_ID, K8S_ROOT, K8S_ROOT_ID, KubernetesRootSpec


def manifest_inputs(cfg: Config, root: KubernetesRootSpec, *, forward_kube_dns_to_host: bool = False,
                    ) -> mf.ManifestInputs:
    """``forward_kube_dns_to_host``: the config's host DNS view (v1alpha1 or ResolverConfig)."""
    c = cfg.cluster
    cni = c.network.cni.name or "flannel"
    prism = cfg.machine.features.kube_prism
    return mf.ManifestInputs(
        bootstrap_token=root.bootstrap_token,
        endpoint=root.endpoint or c.control_plane.endpoint,
        service_subnets=list(root.service_subnets or c.network.service_subnets or ["10.96.0.0/12"]),
        pod_subnets=list(root.pod_subnets or c.network.pod_subnets or ["10.244.0.0/16"]),
        dns_domain=root.dns_domain or c.network.dns_domain or "cluster.local",
        cni=cni,
        cni_urls=list(c.network.cni.urls),
        proxy_image=c.proxy.image or mf.ManifestInputs.proxy_image,
        proxy_disabled=bool(c.proxy.disabled),
        proxy_extra_args=dict(c.proxy.extra_args),
        coredns_disabled=bool(c.core_dns.get("disabled")),
        coredns_image=str(c.core_dns.get("image") or mf.COREDNS_IMAGE),
        forward_kube_dns_to_host=forward_kube_dns_to_host,
        kube_prism_port=(prism.port or KUBEPRISM_DEFAULT_PORT) if prism.enabled else 0,
        extra_manifests=list(c.extra_manifests),
        inline_manifests=[mf.InlineManifest(m.name, m.contents) for m in c.inline_manifests],
    )


class ManifestController(K8sController):
    name = "k8s.ManifestController"
    output_kinds = (MANIFESTS,)

    def inputs(self) -> Sequence[Input]:
        return [Input(MACHINE_CONFIGS.namespace, MACHINE_CONFIGS.type, ACTIVE_ID),
                Input(MACHINE_TYPES.namespace, MACHINE_TYPES.type, MACHINE_TYPE_ID),
                Input(K8S_ROOT.namespace, K8S_ROOT.type, K8S_ROOT_ID)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        container = await machine_container(rt)
        cfg = container.v1alpha1 if container is not None else None
        root = await running_spec(rt, K8S_ROOT, K8S_ROOT_ID)
        if container is None or cfg is None or root is None or not await is_control_plane(rt):
            return
        inputs = manifest_inputs(cfg, root, forward_kube_dns_to_host=views.host_dns(container).forward_kube_dns_to_host)
        for mid, spec in mf.render_manifests(inputs).items():
            await rt.modify(Resource.new(ManifestSpec(), mid), set_spec(spec))


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as resp:
        return str(resp.read().decode())


def _digest(spec: ManifestSpec) -> str:
    return hashlib.sha256(f"{spec.url}\0{spec.objects}".encode()).hexdigest()


class ManifestApplyController(Controller):
    name = "k8s.ManifestApplyController"

    def __init__(self, *, api_url: str | None = None, retry_interval: float = 15.0) -> None:
        self.api_url = api_url
        self.retry_interval = retry_interval
        self.applied: dict[str, str] = {}  # id -> digest of what was applied
        self._client: tuple[tuple[str, str, str], KubeClient] | None = None  # kept for its discovery cache
        self._unreachable = ""  # the last "not reachable" error logged

    def inputs(self) -> Sequence[Input]:
        return [Input(MANIFESTS.namespace, MANIFESTS.type),
                Input(K8S_CERTS.namespace, K8S_CERTS.type, K8S_CERTS_ID),
                Input(APISERVER_CONFIGS.namespace, APISERVER_CONFIGS.type, APISERVER_ID)]

    def outputs(self) -> Sequence[Output]:
        return [Output(MANIFEST_STATUSES.type, OutputKind.EXCLUSIVE)]

    async def run(self, rt: ControllerRuntime) -> None:
        pending = False
        while True:
            with anyio.move_on_after(self.retry_interval if pending else math.inf):
                await rt.wait()
            pending = await self.reconcile(rt)
            rt.reset_restart_backoff()

    async def reconcile(self, rt: ControllerRuntime) -> bool:
        """Returns whether anything is left pending."""
        groups: list[tuple[str, ManifestSpec]] = [(r.metadata.id, r.spec) for r in await rt.list(MANIFESTS)]
        ptr = MANIFEST_STATUSES.pointer(MANIFEST_STATUS_ID)
        if not groups:
            if await rt.get_or_none(ptr) is not None:
                await rt.destroy(ptr)
            return False
        ids = {gid for gid, _ in groups}
        self.applied = {k: v for k, v in self.applied.items() if k in ids}
        todo = [(gid, s) for gid, s in groups if self.applied.get(gid) != _digest(s)]
        error = ""
        server = ""
        if todo:
            certs = await running_spec(rt, K8S_CERTS, K8S_CERTS_ID)
            api = await running_spec(rt, APISERVER_CONFIGS, APISERVER_ID)
            port = api.port if api is not None else 6443
            server = self.api_url or f"https://localhost:{port}"
            if certs is None or not certs.admin_cert:
                error = "no admin client certificate (KubernetesCerts k8s-certs) yet"
            else:
                error = await self._apply_all(rt, server, certs.ca_cert, certs.admin_cert, certs.admin_key, todo)
        status = ManifestStatusSpec(
            applied=sorted(gid for gid, s in groups if self.applied.get(gid) == _digest(s)),
            pending=sorted(gid for gid, s in groups if self.applied.get(gid) != _digest(s)),
            api_server=server, last_error=error)
        await rt.modify(Resource.new(ManifestStatusSpec(), MANIFEST_STATUS_ID), set_spec(status))
        return bool(status.pending)

    async def _apply_all(self, rt: ControllerRuntime, server: str, ca: str, cert: str, key: str,
                         todo: list[tuple[str, ManifestSpec]]) -> str:
        if self._client is None or self._client[0] != (server, ca, cert):
            self._client = ((server, ca, cert), KubeClient(server, tls_context(ca, cert, key)))
        client = self._client[1]
        try:
            await client.get("/version")
        except Exception as exc:  # refused, TLS, timeout, HTTP error: all mean "not yet"
            error = f"API server {server} not reachable: {exc or type(exc).__name__}"
            if error != self._unreachable:  # logged once per reason, not at every retry
                rt.logger.info("API server not reachable: manifests stay pending", server=server, error=str(exc))
                self._unreachable = error
            return error
        self._unreachable = ""
        for gid, spec in todo:
            try:
                text = spec.objects if not spec.url else await anyio.to_thread.run_sync(_fetch, spec.url)
                # bounded (an alias bomb in a manifest is refused, not expanded) and off the loop
                objs: list[dict[str, Any]] = [d for d in await anyio.to_thread.run_sync(load_manifests, text) if d]
                for obj in objs:
                    await client.apply(obj)
            except Exception as exc:  # a failed group stays pending, the next retry tries again
                rt.logger.warning("manifest apply failed", manifest=gid, error=str(exc))
                return f"{gid}: {exc}"
            self.applied[gid] = _digest(spec)
            rt.logger.info("manifest applied", manifest=gid, objects=len(objs))
        return ""
