"""Kubernetes on QEMU nodes booting the kos image (slow): ``kosctl cluster create
--provisioner qemu`` of 1 control plane + 1 worker. The image carries the kubelet and the CNI
plugins only; every container image comes from the cluster's registry (Debian's
docker-registry on the gateway, the nodes' ``machine.registries.mirrors``), as an air-gapped
Talos cluster pulls. Both Nodes Ready, the kube-system pods Running, a busybox pod runs on
the worker, and the registry saw the worker pull it.

Under TCG on a loaded 2-core machine this takes many minutes (figures in docs/kubernetes.md).
Skipped when the built Kubernetes artifacts are absent (rootfs-build/k8s/build)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kos.platform.provision.kubernetes import Artifacts
from kos.platform.provision.network import netns_exists
from kos.platform.provision.qemu import QemuProvisioner, VMSpec
from tests.support.kube import (
    BUSYBOX,
    KubeCluster,
    assert_system_pods,
    missing_artifacts,
    ready,
    system_pods_running,
    until,
)

ART = Artifacts.locate()
_missing = missing_artifacts(ART, ("pause.tar", "kube-apiserver.tar", "busybox.tar"))

pytestmark = [
    pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(4200),
    pytest.mark.skipif(bool(_missing), reason=f"built Kubernetes artifacts absent in {ART.base}: "
                                              f"{', '.join(_missing)}"),
]
POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb", "namespace": "default"},
    "spec": {"nodeSelector": {"kubernetes.io/hostname": "w-1"}, "terminationGracePeriodSeconds": 1,
             "containers": [{"name": "bb", "image": BUSYBOX, "command": ["sh", "-c", "echo up; exec sleep 3600"]}]},
}


def test_kubernetes_on_qemu_nodes(k8s_image: Path, tmp_path: Path) -> None:
    image = k8s_image
    roots = ["--state-root", str(tmp_path / "clusters")]
    name = "vmk"
    prov = QemuProvisioner(VMSpec(image), tmp_path / "clusters")
    c = KubeCluster(name, tmp_path / "clusters", dict(os.environ, KOSCONFIG=str(tmp_path / "kosconfig")),
                    ART.bin_dir / "kubectl")

    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return c.kubectl("--request-timeout", "60s", *args, stdin=stdin, timeout=120)

    def get(*args: str) -> Any:
        return json.loads(kubectl("get", *args, "-o", "json").stdout)

    started = time.monotonic()
    try:
        created = c.kosctl("cluster", "create", "--provisioner", "qemu", "--name", name, "--workers", "1",
                           "--cidr", "10.196.5.0/24", "--cpus", "2", "--memory", "2048", "--image-dir", str(image),
                           "--wait-timeout", "3000", *roots, check=False, timeout=3300)
        print(f"cluster create: {time.monotonic() - started:.0f} s\n{created.stdout}")
        assert created.returncode == 0, created.stdout[-4000:] + created.stderr[-3000:]
        assert "images pushed" in created.stdout
        for check in ("all k8s nodes to report ready: OK", "all control plane static pods to be running: OK",
                      "kube-proxy to report ready: OK", "coredns to report ready: OK"):
            assert check in created.stdout, created.stdout
        nodes = get("nodes")["items"]
        assert sorted(n["metadata"]["name"] for n in nodes) == ["cp-1", "w-1"]
        assert all(ready(n) for n in nodes)
        assert_system_pods(until("kube-system pods Running", lambda: system_pods_running(c), timeout=600, every=5))

        kubectl("apply", "-f", "-", stdin=json.dumps(POD))
        t = time.monotonic()

        def pod_running() -> dict[str, Any] | None:
            p = get("pod", "bb")
            return p if p["status"].get("phase") == "Running" else None
        pod = until("busybox pod Running on the worker", pod_running, timeout=900, every=5)
        print(f"busybox pod Running in {time.monotonic() - t:.0f} s")
        assert pod["spec"]["nodeName"] == "w-1"
        assert "up" in kubectl("logs", "bb").stdout
        # pulled by the worker from the cluster's registry, by the mirror path
        worker_ip = prov.load(name).nodes[1].ip
        log = (c.dir / "registry" / "registry.log").read_text(errors="replace")
        assert any(worker_ip in ln and "/v2/library/busybox/manifests/1.35.0" in ln for ln in log.splitlines())
    finally:
        c.kosctl("cluster", "destroy", "--provisioner", "qemu", "--name", name, *roots, check=False, timeout=300)
        if prov.exists(name):
            prov.destroy(name)
    assert not netns_exists(f"kos-{name}")
