"""``kosctl upgrade-k8s`` for real: a 1 control plane + 1 worker namespace cluster created at the
cluster release (KUBERNETES_VERSION) with a Deployment running on both nodes is moved to the
upgrade release (KUBERNETES_UPGRADE_VERSION): afterwards the API server's /version, the three
control-plane static pods, the kube-proxy DaemonSet and every Node's kubeletVersion are the new
release, and the Deployment's pods are the same pods, still Running and Ready. The upgrade is
interrupted (kosctl killed) right after it patched the control plane, and the second run
resumes it. Before that, a dry run and three bad ``--to`` (garbage, two minor releases ahead,
a version not built) change no node's config and say why; afterwards, running it again finds
nothing to change.

The upgrade's duration is printed with the load average (the figure of docs/kubernetes.md).
Skipped when the upgrade release is not built (rootfs-build/k8s/build --version ...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kos.platform.image import k8s
from kos.platform.provision.kubernetes import Artifacts
from kos.resources.versions import KUBERNETES_UPGRADE_VERSION as TO
from kos.resources.versions import KUBERNETES_VERSION as FROM
from tests.support.kube import (
    NEEDED_IMAGES,
    WEB,
    KubeCluster,
    created_cluster,
    missing_artifacts,
    ready,
    until,
)

ART = Artifacts.locate()
_missing = missing_artifacts(ART, NEEDED_IMAGES)
_next = k8s.cache_dir(TO)
_missing_next = [str(p) for p in [_next / "bin" / "kubelet", *(_next / "images" / n for n in
                                                                 k8s.component_images(TO).values())]
                 if not p.exists()]

pytestmark = [
    pytest.mark.root,
    pytest.mark.timeout(900),  # the module's cluster is created in the first test's setup
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(bool(_missing), reason=f"built Kubernetes artifacts absent in {ART.base}: "
                                              f"{', '.join(_missing)} (run rootfs-build/k8s/build)"),
    pytest.mark.skipif(bool(_missing_next), reason=f"Kubernetes {TO} is not built ({', '.join(_missing_next[:2])} "
                                                   f"missing): run rootfs-build/k8s/build --version {TO}"),
]



@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    with created_cluster(tmp_path_factory.mktemp("upgk8s"), "u", ART.bin_dir / "kubectl",
                         {"cluster": {"allowSchedulingOnControlPlanes": True}}) as c:
        c.kubectl("apply", "-f", "-", stdin=WEB)
        yield c


def upgrade(c: KubeCluster, *args: str, timeout: float = 900) -> Any:
    return c.ctl("upgrade-k8s", "--cluster", c.name, "--state-root", str(c.root), *args, check=False,
                 timeout=timeout)


def node_configs(c: KubeCluster) -> dict[str, bytes]:
    return {n.name: (Path(n.dir) / "state" / "config.yaml").read_bytes() for n in c.state().nodes}


def web_pods(c: KubeCluster) -> dict[str, str]:
    """pod name -> node, for the Running and Ready web pods."""
    pods = c.get("pods", "-l", "app=web")["items"]
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods
            if p["status"].get("phase") == "Running" and p["metadata"].get("deletionTimestamp") is None
            and all(cs.get("ready") for cs in p["status"].get("containerStatuses") or [{}])}


def server_version(c: KubeCluster) -> str:
    out = json.loads(c.kubectl("version", "-o", "json").stdout)
    return str(out["serverVersion"]["gitVersion"])


def test_bad_targets_and_dry_run_change_nothing(cluster: KubeCluster) -> None:
    c = cluster
    before = node_configs(c)
    for to, expected in (
        ("1.33", "--to: '1.33' is not a Kubernetes version, expected vMAJOR.MINOR.PATCH"),
        ("v1.34.0", f"2 minor releases ahead of {FROM}"),
        ("v1.33.99", "names Kubernetes v1.33.99, which this node does not hold"),
    ):
        proc = upgrade(c, "--to", to, timeout=120)
        assert proc.returncode != 0, proc.stdout
        assert expected in proc.stderr, proc.stderr
        assert node_configs(c) == before, to
    unbuilt = upgrade(c, "--to", "v1.33.99", timeout=120)
    assert f"available: {FROM}, {TO}" in unbuilt.stderr and "nothing was changed" in unbuilt.stderr, unbuilt.stderr
    assert "FAILED_PRECONDITION" in unbuilt.stderr

    # reading the configs (secrets inside) and applying them is os:admin's
    reader = c.dir.parent / f"{c.name}-reader.kosconfig"
    c.ctl("get-client-config", str(reader), "--roles", "os:reader")
    denied = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "upgrade-k8s", "--to", TO, "--dry-run",
                             "--cluster", c.name, "--state-root", str(c.root)], env=dict(c.env, KOSCONFIG=str(reader)),
                            capture_output=True, text=True, timeout=120)
    assert denied.returncode != 0 and "PERMISSION_DENIED" in denied.stderr and "os:admin" in denied.stderr, denied

    proc = upgrade(c, "--to", TO.lstrip("v"), "--dry-run", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"automatically detected the lowest Kubernetes version {FROM}" in proc.stdout
    assert f"update kube-apiserver: {FROM} -> {TO}" in proc.stdout and f"update kubelet: {FROM} -> {TO}" in proc.stdout
    assert node_configs(c) == before
    assert server_version(c) == FROM


def test_upgrade_moves_every_component_and_keeps_the_workload(cluster: KubeCluster) -> None:
    c = cluster
    pods = until("2 web pods Running and Ready", lambda: (lambda p: p if len(p) == 2 else None)(web_pods(c)),
                 timeout=180)
    assert len(set(pods.values())) == 2  # one per node
    load = os.getloadavg()[0]
    started = time.monotonic()
    # interrupted: kosctl killed once the control plane's config is patched (its pods restarting)
    first = subprocess.Popen([sys.executable, "-m", "kos.apis.kosctl.main", "--context", c.name, "upgrade-k8s",
                              "--to", TO, "--cluster", c.name, "--state-root", str(c.root)],
                             env=c.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first.stdout is not None
    seen = []
    for line in first.stdout:
        seen.append(line)
        if "machine configuration patched" in line:
            first.kill()
            break
    first.wait(timeout=30)
    assert any("update kube-apiserver" in ln for ln in seen), "".join(seen)
    proc = upgrade(c, "--to", TO)  # resumed
    seconds = time.monotonic() - started
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{c.consoles()}"
    print(f"\nupgrade-k8s {FROM} -> {TO} of a 1+1 cluster (interrupted once, resumed): {seconds:.1f} s "
          f"(load average {load:.2f} before, {os.getloadavg()[0]:.2f} after)")
    out = proc.stdout
    assert f"already at {TO}: nothing to patch" in out.split("updating kube-proxy")[0], out  # the control plane
    for line in ("updating control plane on", "kube-apiserver: pod is ready", "updating kube-proxy to version",
                 "kube-proxy: rolled out", "updating kubelet to version", "kubelet is ready", f"upgrade to {TO} done"):
        assert line in out, out

    assert server_version(c) == TO
    st = c.state()
    cp = next(n for n in st.nodes if n.role == "controlplane")
    system = {p["metadata"]["name"]: p for p in c.get("pods", "-n", "kube-system")["items"]}
    for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        pod = system[f"{comp}-{cp.name}"]  # upgrade-k8s waited for them after the kubelet restart
        assert pod["spec"]["containers"][0]["image"] == f"registry.k8s.io/{comp}:{TO}"
        assert pod["status"]["phase"] == "Running" and ready(pod), pod["status"]
    ds = c.get("daemonset", "-n", "kube-system", "kube-proxy")
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.k8s.io/kube-proxy:{TO}"
    nodes = c.get("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(n.name for n in st.nodes)
    for n in nodes:
        assert n["status"]["nodeInfo"]["kubeletVersion"] == TO and ready(n), n["metadata"]["name"]
    # the workload: the same two pods, Running and Ready (the kubelet restart kept them)
    assert until("the web pods Ready again", lambda: web_pods(c) == pods or None, timeout=120)
    # the machine configs say so too
    configs = {n: t.decode() for n, t in node_configs(c).items()}
    assert f"ghcr.io/siderolabs/kubelet:{TO}" in configs[cp.name]
    assert f"registry.k8s.io/kube-apiserver:{TO}" in configs[cp.name]


def test_running_it_again_resumes_with_nothing_to_do(cluster: KubeCluster) -> None:
    c = cluster
    before = node_configs(c)
    proc = upgrade(c, "--to", TO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"automatically detected the lowest Kubernetes version {TO}" in proc.stdout
    assert f"already at {TO}: nothing to patch" in proc.stdout
    assert node_configs(c) == before
