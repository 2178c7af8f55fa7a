"""Control-plane controllers: component configs, rendered static pods, files on disk.

* ``ControlPlaneConfigController``: MachineConfig + MachineType (control planes only) +
  NodeIPs -> APIServerConfigs / ControllerManagerConfigs / SchedulerConfigs.
* ``StaticPodController``: the three configs + KubernetesCerts(k8s-certs) +
  KubernetesRootSecrets(k8s) + EtcdCerts(etcd) -> StaticPods(<component>) and
  ControlPlaneFiles(<component>) (sensitive), through ``kos.controllers.k8s.controlplane``.
* ``StaticPodFileController``: StaticPods + ControlPlaneFiles -> ``<static_pod_dir>/<id>.yaml``
  and ``<secrets_dir>/<component>/...`` (keys, kubeconfigs and the encryption config 0600,
  directories 0700, written atomically), then StaticPodStatuses(<component>) with the path
  and digest. Files of components that disappear are removed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import anyio

from kos.controllers.k8s import controlplane as cp
from kos.controllers.k8s.base import (
    MACHINE_CONFIGS,
    MACHINE_TYPE_ID,
    MACHINE_TYPES,
    K8sController,
    is_control_plane,
    machine_config,
    running_spec,
)
from kos.controllers.k8s.flags import TARGET_VERSION, unknown_flags
from kos.controllers.runtime import ControllerRuntime, Input, set_spec
from kos.resources.config import ACTIVE_ID
from kos.resources.core import Resource
from kos.resources.k8s import (
    APISERVER_CONFIGS,
    APISERVER_ID,
    CONTROL_PLANE_FILES,
    CONTROL_PLANE_IDS,
    CONTROLLER_MANAGER_CONFIGS,
    CONTROLLER_MANAGER_ID,
    NODEIP_ID,
    NODEIPS,
    SCHEDULER_CONFIGS,
    SCHEDULER_ID,
    STATIC_POD_STATUSES,
    STATIC_PODS,
    APIServerConfigSpec,
    ControllerManagerConfigSpec,
    ControlPlaneFilesSpec,
    SchedulerConfigSpec,
    StaticPodSpec,
    StaticPodStatusSpec,
)
from kos.resources.secrets import ETCD_CERTS, ETCD_CERTS_ID, K8S_CERTS, K8S_CERTS_ID, K8S_ROOT, K8S_ROOT_ID


class ControlPlaneConfigController(K8sController):
    name = "k8s.ControlPlaneConfigController"
    output_kinds = (APISERVER_CONFIGS, CONTROLLER_MANAGER_CONFIGS, SCHEDULER_CONFIGS)

    def inputs(self) -> Sequence[Input]:
        return [Input(MACHINE_CONFIGS.namespace, MACHINE_CONFIGS.type, ACTIVE_ID),
                Input(MACHINE_TYPES.namespace, MACHINE_TYPES.type, MACHINE_TYPE_ID),
                Input(NODEIPS.namespace, NODEIPS.type, NODEIP_ID)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        cfg = await machine_config(rt)
        if cfg is None or not await is_control_plane(rt):
            return
        ips = await running_spec(rt, NODEIPS, NODEIP_ID)
        advertised = ips.addresses[0] if ips is not None and ips.addresses else ""
        api, cm, sched = cp.configs_from_machine(cfg, advertised_address=advertised)
        await rt.modify(Resource.new(APIServerConfigSpec(), APISERVER_ID), set_spec(api))
        await rt.modify(Resource.new(ControllerManagerConfigSpec(), CONTROLLER_MANAGER_ID), set_spec(cm))
        await rt.modify(Resource.new(SchedulerConfigSpec(), SCHEDULER_ID), set_spec(sched))


class StaticPodController(K8sController):
    name = "k8s.StaticPodController"
    output_kinds = (STATIC_PODS, CONTROL_PLANE_FILES)

    def __init__(self, secrets_dir: str) -> None:
        self.secrets_dir = secrets_dir.rstrip("/")

    def inputs(self) -> Sequence[Input]:
        return [Input(APISERVER_CONFIGS.namespace, APISERVER_CONFIGS.type),
                Input(CONTROLLER_MANAGER_CONFIGS.namespace, CONTROLLER_MANAGER_CONFIGS.type),
                Input(SCHEDULER_CONFIGS.namespace, SCHEDULER_CONFIGS.type),
                Input(K8S_CERTS.namespace, K8S_CERTS.type, K8S_CERTS_ID),
                Input(K8S_ROOT.namespace, K8S_ROOT.type, K8S_ROOT_ID),
                Input(ETCD_CERTS.namespace, ETCD_CERTS.type, ETCD_CERTS_ID)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        certs = await running_spec(rt, K8S_CERTS, K8S_CERTS_ID)
        root = await running_spec(rt, K8S_ROOT, K8S_ROOT_ID)
        etcd = await running_spec(rt, ETCD_CERTS, ETCD_CERTS_ID)
        api: APIServerConfigSpec | None = await running_spec(rt, APISERVER_CONFIGS, APISERVER_ID)
        if certs is None or root is None or etcd is None or api is None:
            return
        m = cp.ControlPlaneMaterial.from_secrets(certs, root, etcd)
        rendered: dict[str, cp.Rendered] = {APISERVER_ID: cp.render_apiserver(api, m, secrets_dir=self.secrets_dir)}
        cm: ControllerManagerConfigSpec | None = await running_spec(rt, CONTROLLER_MANAGER_CONFIGS,
                                                                    CONTROLLER_MANAGER_ID)
        if cm is not None and cm.enabled:
            rendered[CONTROLLER_MANAGER_ID] = cp.render_controller_manager(
                cm, m, secrets_dir=self.secrets_dir, apiserver_port=api.port)
        sched: SchedulerConfigSpec | None = await running_spec(rt, SCHEDULER_CONFIGS, SCHEDULER_ID)
        if sched is not None and sched.enabled:
            rendered[SCHEDULER_ID] = cp.render_scheduler(sched, m, secrets_dir=self.secrets_dir,
                                                         apiserver_port=api.port)
        for cid, r in rendered.items():
            args = list(r.pod["spec"]["containers"][0]["args"])
            unknown = unknown_flags(cid, args)
            if unknown:  # a newer Kubernetes may know them: warn, do not refuse
                rt.logger.warning(f"flags unknown to {cid} {TARGET_VERSION}", component=cid,
                                  flags=[f"--{f}" for f in unknown])
            await rt.modify(Resource.new(ControlPlaneFilesSpec(), cid), set_spec(ControlPlaneFilesSpec(files=r.files)))
            pod = StaticPodSpec(component=cid, pod=r.pod_yaml())
            await rt.modify(Resource.new(StaticPodSpec(), cid), set_spec(pod))


def write_atomic(path: Path, content: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_component(static_pod_dir: Path, secrets_dir: Path, cid: str, pod: str, files: dict[str, str]) -> str:
    """Write one component's secrets then its manifest (so the kubelet never sees a pod whose
    files are missing); returns the manifest's sha256. Blocking: call via anyio.to_thread."""
    comp_dir = secrets_dir / cid
    comp_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(comp_dir, 0o700)
    wanted = set()
    for rel, content in sorted(files.items()):
        target = secrets_dir / rel
        if secrets_dir.resolve() not in target.resolve().parents:
            raise ValueError(f"control-plane file {rel!r} escapes the secrets dir")
        write_atomic(target, content, 0o600 if cp.is_secret_file(rel) else 0o644)
        wanted.add(target.name)
    for stale in comp_dir.iterdir():
        if stale.is_file() and stale.name not in wanted:
            stale.unlink()
    write_atomic(static_pod_dir / f"{cid}.yaml", pod, 0o644)
    return hashlib.sha256(pod.encode()).hexdigest()


def remove_component(static_pod_dir: Path, secrets_dir: Path, cid: str) -> None:
    (static_pod_dir / f"{cid}.yaml").unlink(missing_ok=True)
    comp_dir = secrets_dir / cid
    if comp_dir.is_dir():
        for f in comp_dir.iterdir():
            f.unlink()
        comp_dir.rmdir()


class StaticPodFileController(K8sController):
    name = "k8s.StaticPodFileController"
    output_kinds = (STATIC_POD_STATUSES,)

    def __init__(self, static_pod_dir: str, secrets_dir: str) -> None:
        self.static_pod_dir = Path(static_pod_dir)
        self.secrets_dir = Path(secrets_dir)

    def inputs(self) -> Sequence[Input]:
        return [Input(STATIC_PODS.namespace, STATIC_PODS.type),
                Input(CONTROL_PLANE_FILES.namespace, CONTROL_PLANE_FILES.type)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        present: set[str] = set()
        for r in await rt.list(STATIC_PODS):
            cid = r.metadata.id
            files = await running_spec(rt, CONTROL_PLANE_FILES, cid)
            if files is None or cid not in CONTROL_PLANE_IDS:
                continue
            pod: StaticPodSpec = r.spec
            digest = await anyio.to_thread.run_sync(
                write_component, self.static_pod_dir, self.secrets_dir, cid, pod.pod, dict(files.files))
            present.add(cid)
            status = StaticPodStatusSpec(path=str(self.static_pod_dir / f"{cid}.yaml"), sha256=digest,
                                         secret_files=sorted(files.files))
            await rt.modify(Resource.new(StaticPodStatusSpec(), cid), set_spec(status))
        for cid in CONTROL_PLANE_IDS:
            if cid not in present:
                await anyio.to_thread.run_sync(remove_component, self.static_pod_dir, self.secrets_dir, cid)
