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
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kos.platform.provision.kubernetes import Artifacts
from kos.platform.provision.network import netns_exists
from kos.platform.provision.qemu import QemuProvisioner, VMSpec

ART = Artifacts.locate()
_missing = [b for b in ("kubelet", "kubectl") if not (ART.bin_dir / b).exists()] + \
    [i for i in ("pause.tar", "kube-apiserver.tar", "busybox.tar") if not (ART.image_dir / i).exists()]

pytestmark = [
    pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(4200),
    pytest.mark.skipif(bool(_missing), reason=f"built Kubernetes artifacts absent in {ART.base}: "
                                              f"{', '.join(_missing)}"),
]
T = TypeVar("T")
BUSYBOX = "docker.io/library/busybox:1.35.0"
POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb", "namespace": "default"},
    "spec": {"nodeSelector": {"kubernetes.io/hostname": "w-1"}, "terminationGracePeriodSeconds": 1,
             "containers": [{"name": "bb", "image": BUSYBOX, "command": ["sh", "-c", "echo up; exec sleep 3600"]}]},
}


def kosctl(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(tmp_path / "kosconfig"),
                           *args], capture_output=True, text=True, timeout=timeout)


def until(what: str, fn: Callable[[], T | None], timeout: float, every: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            got = fn()
            if got:
                return got
            last = got
        except (AssertionError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {str(last)[-1500:]})")
        time.sleep(every)


def test_kubernetes_on_qemu_nodes(k8s_image: Path, tmp_path: Path) -> None:
    image = k8s_image
    roots = ["--state-root", str(tmp_path / "clusters")]
    name = "vmk"
    prov = QemuProvisioner(VMSpec(image), tmp_path / "clusters")
    cdir = tmp_path / "clusters" / name

    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(ART.bin_dir / "kubectl"), "--kubeconfig", str(cdir / "kubeconfig"),
                               "--request-timeout", "60s", *args], capture_output=True, text=True, input=stdin,
                              timeout=120)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc

    def get(*args: str) -> Any:
        return json.loads(kubectl("get", *args, "-o", "json").stdout)

    started = time.monotonic()
    try:
        created = kosctl(tmp_path, "cluster", "create", "--provisioner", "qemu", "--name", name, "--workers", "1",
                         "--cidr", "10.196.5.0/24", "--cpus", "2", "--memory", "2048", "--image-dir", str(image),
                         "--wait-timeout", "3000", *roots, timeout=3300)
        print(f"cluster create: {time.monotonic() - started:.0f} s\n{created.stdout}")
        assert created.returncode == 0, created.stdout[-4000:] + created.stderr[-3000:]
        assert "images pushed" in created.stdout
        for check in ("all k8s nodes to report ready: OK", "all control plane static pods to be running: OK",
                      "kube-proxy to report ready: OK", "coredns to report ready: OK"):
            assert check in created.stdout, created.stdout
        nodes = get("nodes")["items"]
        assert sorted(n["metadata"]["name"] for n in nodes) == ["cp-1", "w-1"]
        assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
                   for n in nodes)

        def system_running() -> list[str] | None:
            pods = get("pods", "-n", "kube-system")["items"]
            names = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
            return names if len(names) == len(pods) else None
        names = until("kube-system pods Running", system_running, timeout=600)
        for prefix, count in (("kube-apiserver-", 1), ("kube-controller-manager-", 1), ("kube-scheduler-", 1),
                              ("kube-proxy-", 2), ("kube-flannel-", 2), ("coredns-", 2)):
            assert len([n for n in names if n.startswith(prefix)]) == count, (prefix, names)

        kubectl("apply", "-f", "-", stdin=json.dumps(POD))
        t = time.monotonic()

        def pod_running() -> dict[str, Any] | None:
            p = get("pod", "bb")
            return p if p["status"].get("phase") == "Running" else None
        pod = until("busybox pod Running on the worker", pod_running, timeout=900)
        print(f"busybox pod Running in {time.monotonic() - t:.0f} s")
        assert pod["spec"]["nodeName"] == "w-1"
        assert "up" in kubectl("logs", "bb").stdout
        # pulled by the worker from the cluster's registry, by the mirror path
        worker_ip = prov.load(name).nodes[1].ip
        log = (cdir / "registry" / "registry.log").read_text(errors="replace")
        assert any(worker_ip in ln and "/v2/library/busybox/manifests/1.35.0" in ln for ln in log.splitlines())
    finally:
        kosctl(tmp_path, "cluster", "destroy", "--provisioner", "qemu", "--name", name, *roots, timeout=300)
        if prov.exists(name):
            prov.destroy(name)
    assert not netns_exists(f"kos-{name}")
