"""What the Kubernetes end-to-end tests share: a handle on a ``kosctl cluster create``d cluster
(kosctl and the built kubectl with the cluster's kubeconfig), a poll-until helper that keeps the
last failure for its message, Node readiness, the busybox image, and the artifact check that
skips a test when the built Kubernetes binaries or images are absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kos.platform.provision.kubernetes import Artifacts
from tests.support.cluster import KosCluster

T = TypeVar("T")
BUSYBOX = "docker.io/library/busybox:1.35.0"


def missing_artifacts(art: Artifacts, images: Iterable[str]) -> list[str]:
    """The built binaries (kubelet, kubectl) and image archives that ``art`` lacks."""
    return [b for b in ("kubelet", "kubectl") if not (art.bin_dir / b).exists()] + \
        [i for i in images if not (art.image_dir / i).exists()]


def until(what: str, fn: Callable[[], T | None], timeout: float = 120, every: float = 1.0) -> T:
    """Call ``fn`` until it returns something true; on timeout fail naming ``what`` and the last
    result or error (subprocess, JSON and assertion failures count as "not yet")."""
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


def ready(node: dict[str, Any]) -> bool:
    """A Node object (kubectl JSON) whose Ready condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


@dataclass
class KubeCluster(KosCluster):
    """A cluster with Kubernetes, and the built kubectl with its kubeconfig."""

    kubectl_bin: Path

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.kubectl_bin), "--kubeconfig", str(self.dir / "kubeconfig"), *args],
                              capture_output=True, text=True, input=stdin, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


# kube-system pods of a 1 control plane + 1 worker cluster: name prefix -> count
SYSTEM_PODS_1_1 = (("kube-apiserver-", 1), ("kube-controller-manager-", 1), ("kube-scheduler-", 1),
                   ("kube-proxy-", 2), ("kube-flannel-", 2), ("coredns-", 2))


def system_pods_running(c: KubeCluster) -> list[str] | None:
    """The kube-system pod names once every one of them is Running, else None."""
    pods = c.get("pods", "-n", "kube-system")["items"]
    names = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
    return names if len(names) == len(pods) else None


def assert_system_pods(names: list[str], expected: Iterable[tuple[str, int]] = SYSTEM_PODS_1_1) -> None:
    for prefix, count in expected:
        assert len([n for n in names if n.startswith(prefix)]) == count, (prefix, names)


K8S_HEALTH_CHECKS = ("all k8s nodes to report ready: OK", "all control plane static pods to be running: OK",
                     "kube-proxy to report ready: OK", "coredns to report ready: OK")
# the images a 1+1 Kubernetes cluster of namespace nodes imports (the artifact check of the e2e tests)
NEEDED_IMAGES = ("pause.tar", "kube-apiserver.tar", "kube-controller-manager.tar", "kube-scheduler.tar",
                 "kube-proxy.tar", "coredns.tar", "flannel.tar", "flannel-cni-plugin.tar", "busybox.tar")


@contextmanager
def created_cluster(tmp: Path, prefix: str, kubectl_bin: Path, patch: dict[str, Any]) -> Iterator[KubeCluster]:
    """``kosctl cluster create`` of 1 control plane + 1 worker with ``patch``, named ``prefix`` +
    6 random hex digits under ``tmp``; fails with the nodes' consoles when the cluster does not
    come up with every Kubernetes health check OK; destroyed on exit."""
    env = dict(os.environ, KOSCONFIG=str(tmp / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path))
    c = KubeCluster(prefix + uuid.uuid4().hex[:6], tmp / "clusters", env, kubectl_bin)
    started = time.monotonic()
    proc = c.kosctl("cluster", "create", "--name", c.name, "--state-root", str(c.root), "--controlplanes", "1",
                    "--workers", "1", "--wait-timeout", "240", "--config-patch", json.dumps(patch),
                    check=False, timeout=400)
    try:
        if proc.returncode != 0:
            raise AssertionError(f"cluster create failed:\n{proc.stdout}\n{proc.stderr}\n{c.consoles()}")
        print(f"cluster create: {time.monotonic() - started:.1f} s")
        for check in K8S_HEALTH_CHECKS:
            assert check in proc.stdout, proc.stdout
        yield c
    finally:
        c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)


# 2 busybox web servers spread over the nodes (they log "started <pod>"), and their Service
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
        - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
           labelSelector: {matchLabels: {app: web}}}
      terminationGracePeriodSeconds: 2
      containers:
        - name: web
          image: BUSYBOX
          imagePullPolicy: Never
          command: ["sh", "-c", "echo started $(hostname); mkdir -p /www; hostname > /www/index.html;
                    exec httpd -f -p 8080 -h /www"]
          ports: [{containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""".replace("BUSYBOX", BUSYBOX)
