"""Host DNS and KubePrism on a real Kubernetes cluster of namespace nodes (1 control plane + 1
worker, ``machine.features.hostDNS`` on with ``forwardKubeDNSToHost`` and
``resolveMemberNames``; KubePrism is on in kos's generated configs):

* each node's ``resolv.conf`` names 127.0.0.53 (``kosctl read``), the cache listens there and on
  169.254.116.108 (``HostDNSStatuses``), the kubelet hands pods ``/etc/resolv.conf.upstream``;
* CoreDNS's Corefile forwards to 169.254.116.108; a pod resolves the worker's hostname through
  CoreDNS -> the worker's host DNS cache (member names) and a Service name as before;
* kube-proxy and flannel get ``KUBERNETES_SERVICE_HOST=127.0.0.1`` / ``_PORT=7445``, and on each
  node their only API connections are to 127.0.0.1:7445 (``ss`` in the node's network namespace),
  the kubelet's too, while they work (Nodes Ready, the Service reached through kube-proxy's rules).

Skipped only when the built Kubernetes binaries or images are absent (rootfs-build/k8s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kos.platform.provision.kubernetes import Artifacts
from tests.support.kube import BUSYBOX, KubeCluster, missing_artifacts, ready, system_pods_running, until

ART = Artifacts.locate()
NEEDED_IMAGES = ("pause.tar", "kube-apiserver.tar", "kube-controller-manager.tar", "kube-scheduler.tar",
                 "kube-proxy.tar", "coredns.tar", "flannel.tar", "flannel-cni-plugin.tar", "busybox.tar")
_missing = missing_artifacts(ART, NEEDED_IMAGES)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(bool(_missing), reason=f"built Kubernetes artifacts absent in {ART.base}: "
                                              f"{', '.join(_missing)} (run rootfs-build/k8s/build.py)"),
]

PATCH = {"cluster": {"allowSchedulingOnControlPlanes": True},
         "machine": {"features": {"hostDNS": {"enabled": True, "forwardKubeDNSToHost": True,
                                              "resolveMemberNames": True}}}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    tmp = tmp_path_factory.mktemp("hostdns")
    env = dict(os.environ, KOSCONFIG=str(tmp / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path))
    c = KubeCluster("d" + uuid.uuid4().hex[:6], tmp / "clusters", env, ART.bin_dir / "kubectl")
    proc = c.kosctl("cluster", "create", "--name", c.name, "--state-root", str(c.root), "--controlplanes", "1",
                    "--workers", "1", "--wait-timeout", "240", "--config-patch", json.dumps(PATCH),
                    check=False, timeout=400)
    try:
        if proc.returncode != 0:
            raise AssertionError(f"cluster create failed:\n{proc.stdout}\n{proc.stderr}\n{c.consoles()}")
        assert "coredns to report ready: OK" in proc.stdout, proc.stdout
        yield c
    finally:
        c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)


def _env(c: KubeCluster, name: str) -> dict[str, str]:
    ds = c.get("daemonset", "-n", "kube-system", name)
    return {e["name"]: e["value"] for e in ds["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}


def _api_peers(netns: str, process: str) -> set[str]:
    """The remote ends of ``process``'s established TCP connections in the node's namespace."""
    out = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "ss", "-Htnp", "state", "established"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split()[3] for line in out.splitlines() if f'(("{process}"' in line}


def test_host_dns_and_kubeprism_carry_the_cluster(cluster: KubeCluster) -> None:
    c = cluster
    st = c.state()
    cp = next(n for n in st.nodes if n.role == "controlplane")
    w = next(n for n in st.nodes if n.role == "worker")
    assert all(ready(n) for n in c.get("nodes")["items"])
    until("kube-system pods Running", lambda: system_pods_running(c))

    # the node side: resolv.conf -> the cache, which listens on both addresses
    for n in (cp, w):
        assert "nameserver 127.0.0.53" in c.ctl("-n", n.ip, "read", "/etc/resolv.conf").stdout
        assert "resolvConf: /etc/resolv.conf.upstream" in c.ctl("-n", n.ip, "read",
                                                                "/etc/kubernetes/kubelet.yaml").stdout
        status: dict[str, Any] = json.loads(c.ctl("-n", n.ip, "get", "hostdnsstatuses", "config", "-o",
                                                  "json").stdout)
        assert status["spec"]["listening"] == ["127.0.0.53:53", "169.254.116.108:53"], status

    # the manifests: CoreDNS forwards to the host; kube-proxy and flannel use KubePrism
    corefile = c.get("configmap", "-n", "kube-system", "coredns")["data"]["Corefile"]
    assert "forward . 169.254.116.108 {" in corefile, corefile
    for ds in ("kube-proxy", "kube-flannel"):
        env = _env(c, ds)
        assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "7445"), (ds, env)
    for n in (cp, w):
        for proc in ("kube-proxy", "flanneld"):
            peers = until(f"{proc} on {n.name} connected", lambda n=n, proc=proc: _api_peers(n.netns, proc) or None)
            assert peers == {"127.0.0.1:7445"}, (n.name, proc, peers)
        # the kubelet too (its probes may hold short connections to pods, never to an API server)
        peers = until(f"kubelet on {n.name} connected", lambda n=n: _api_peers(n.netns, "kubelet") or None)
        assert "127.0.0.1:7445" in peers and not any(p.endswith(":6443") for p in peers), (n.name, peers)

    # a pod: the worker's hostname through CoreDNS -> host DNS (member names); a Service by name
    c.kubectl("run", "dnsprobe", f"--image={BUSYBOX}", "--image-pull-policy=Never", "--restart=Never",
              f'--overrides={{"spec": {{"nodeName": "{cp.name}", "terminationGracePeriodSeconds": 1}}}}',
              "--command", "--", "sleep", "3600")
    until("the probe pod running", lambda: c.get("pod", "dnsprobe")["status"].get("phase") == "Running" or None)

    def lookup(name: str) -> str | None:
        out = c.kubectl("exec", "dnsprobe", "--", "nslookup", name, check=False).stdout
        return out if "Name:" in out else None
    member = until("the worker's name resolved", lambda: lookup(f"{w.name}."), timeout=60)
    assert w.ip in member and "10.244." not in member, member  # pod-network addresses are left out
    svc = until("a Service name resolved", lambda: lookup("kubernetes.default.svc.cluster.local"), timeout=60)
    assert "10.96.0.1" in svc, svc

    def queries() -> int | None:  # on the nodes running CoreDNS (the counters are published every 5 s)
        total = sum(json.loads(c.ctl("-n", n.ip, "get", "hostdnsstatuses", "config", "-o", "json").stdout)
                    ["spec"]["queries"] for n in (cp, w))
        return total or None
    until("the host DNS caches counted CoreDNS's queries", queries, timeout=30)
