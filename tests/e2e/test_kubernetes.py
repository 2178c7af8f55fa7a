"""Kubernetes on kos, for real: ``kosctl cluster create`` of 1 control plane + 1 worker
(namespace nodes) ends with both Nodes Ready in the built ``kubectl``; the control plane
runs as static pods from kos's manifests, talking to the node's etcd; kube-proxy, flannel
and CoreDNS come from kos's bootstrap manifests; the worker joined with the bootstrap token
and its serving certificate came from a CSR kos approved.

Then, on the same cluster: a Deployment of 2 busybox replicas spreads over both nodes;
pod-to-pod traffic crosses nodes (flannel vxlan); a ClusterIP Service is reached by name
(CoreDNS + kube-proxy) from another pod; ``kubectl logs``/``exec`` reach a pod on the worker
(the kubelet's serving certificate); a killed kubelet is restarted by machined and shows in
``kosctl services``; an image that is not there is named by the pod and by ``kosctl health``;
the worker reboots and is Ready again with its pod; ``kosctl reset`` of the worker cordons and
drains it and its Node leaves.

First, host DNS and KubePrism on the same cluster (``resolveMemberNames`` patched on):

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
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kos.platform.provision.kubernetes import Artifacts
from tests.support.kube import (
    BUSYBOX,
    NEEDED_IMAGES,
    WEB,
    KubeCluster,
    assert_system_pods,
    created_cluster,
    missing_artifacts,
    ready,
    system_pods_running,
    until,
)

ART = Artifacts.locate()
_missing = missing_artifacts(ART, NEEDED_IMAGES)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(bool(_missing), reason=f"built Kubernetes artifacts absent in {ART.base}: "
                                              f"{', '.join(_missing)} (run rootfs-build/k8s/build.py)"),
]

MISSING_IMAGE = "registry.k8s.io/coredns/coredns:v0.0.0-kos-missing"
# host DNS (enabled + forwardKubeDNSToHost) and KubePrism are on in kos's generated configs
PATCH = {"cluster": {"allowSchedulingOnControlPlanes": True},
         "machine": {"features": {"hostDNS": {"enabled": True, "forwardKubeDNSToHost": True,
                                              "resolveMemberNames": True}}}}
Cluster = KubeCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with created_cluster(tmp_path_factory.mktemp("k8s"), "k", ART.bin_dir / "kubectl", PATCH) as c:
        yield c


def _env(c: KubeCluster, name: str) -> dict[str, str]:
    ds = c.get("daemonset", "-n", "kube-system", name)
    return {e["name"]: e["value"] for e in ds["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}


def _api_peers(netns: str, process: str) -> set[str]:
    """The remote ends of ``process``'s established TCP connections in the node's namespace."""
    out = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "ss", "-Htnp", "state", "established"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split()[3] for line in out.splitlines() if f'(("{process}"' in line}


def test_host_dns_and_kubeprism_carry_the_cluster(cluster: KubeCluster) -> None:
    """Runs first on the module's cluster (the next test reboots and resets its worker)."""
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
    c.kubectl("delete", "pod", "dnsprobe", "--wait=false")




GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s %s"


def _web_pods(c: Cluster) -> dict[str, dict[str, Any]]:
    """node name -> running, ready web pod"""
    pods = c.get("pods", "-l", "app=web")["items"]
    return {p["spec"]["nodeName"]: p for p in pods
            if p["status"].get("phase") == "Running" and p["metadata"].get("deletionTimestamp") is None
            and any(cs.get("ready") for cs in p["status"].get("containerStatuses") or [])}


def _kubelet_host_pid(c: Cluster, node: str) -> int:
    """The host PID of the kubelet running in ``node`` (found by its cgroup); 0 when none."""
    cg = f"kos-{c.name}-{node}/"
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if Path(p, "comm").read_text().strip() == "kubelet" and cg in Path(p, "cgroup").read_text():
                return int(p.name)
        except OSError:
            continue
    return 0


def test_kubernetes_runs_on_kos(cluster: Cluster) -> None:
    c = cluster
    st = c.state()
    cp = next(n for n in st.nodes if n.role == "controlplane")
    w = next(n for n in st.nodes if n.role == "worker")

    # both Nodes Ready, reached through the host's forwarded port with the built kubectl
    nodes = {n["metadata"]["name"]: n for n in c.get("nodes")["items"]}
    assert sorted(nodes) == [cp.name, w.name] and all(ready(n) for n in nodes.values())
    assert nodes[w.name]["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.13"
    # the worker joined with the bootstrap token; its serving certificate came through kos's approver
    assert any(r["spec"]["username"].startswith("system:bootstrap:") for r in c.get("csr")["items"])

    def serving_approved() -> list[dict[str, Any]] | None:  # the kubelet may have filed it a moment ago
        serving = [r for r in c.get("csr")["items"] if r["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
                   and r["spec"]["username"] == f"system:node:{w.name}"]
        approved = all(any(cd["type"] == "Approved" for cd in r["status"].get("conditions", [])) for r in serving)
        return serving if serving and approved else None
    until("the worker's kubelet-serving CSR approved by kos", serving_approved, timeout=60)

    # kube-system: static pods, kube-proxy, flannel, CoreDNS all Running
    assert_system_pods(until("kube-system pods Running", lambda: system_pods_running(c)))

    # a Deployment of 2 busybox replicas spreads over both nodes
    c.kubectl("apply", "-f", "-", stdin=WEB)
    web = until("web pods ready on both nodes", lambda: (p := _web_pods(c)) and len(p) == 2 and p, timeout=90)
    assert sorted(web) == [cp.name, w.name]
    on_cp, on_w = web[cp.name], web[w.name]

    # pod-to-pod across nodes (flannel vxlan). HTTP by hand with nc: Debian's static busybox
    # wget crashes without glibc's NSS modules, which a busybox-only image does not have
    out = c.kubectl("exec", on_cp["metadata"]["name"], "--", "sh", "-c", GET % (on_w["status"]["podIP"], 8080)).stdout
    assert out.splitlines()[0].startswith("HTTP/1.") and out.strip().endswith(on_w["metadata"]["name"]), out

    # a ClusterIP Service by name, through CoreDNS (busybox nslookup) and kube-proxy, from the worker's pod
    svc_ip = c.get("service", "web")["spec"]["clusterIP"]

    def by_name() -> str | None:
        script = ("ip=$(nslookup web.default.svc.cluster.local | awk '/^Address/ {a=$NF} END {print a}'); "
                  "echo ip=$ip; " + GET % ("$ip", 80))
        out = c.kubectl("exec", on_w["metadata"]["name"], "--", "sh", "-c", script, check=False).stdout
        return out if f"ip={svc_ip}" in out and "200 OK" in out else None
    answer = until("the Service answers by name", by_name, timeout=60).strip()
    assert answer.splitlines()[-1] in {p["metadata"]["name"] for p in web.values()}, answer

    # kubectl logs and exec on the worker (its kubelet's serving certificate, approved by kos)
    assert f"started {on_w['metadata']['name']}" in c.kubectl("logs", on_w["metadata"]["name"]).stdout
    assert c.kubectl("exec", on_w["metadata"]["name"], "--", "hostname").stdout.strip() == on_w["metadata"]["name"]

    # the same log through kos's API, from the kubelet's files on the node (kosctl logs -k), by
    # the id kosctl containers -k prints and by NAMESPACE/POD; the apiserver's own log likewise
    pod = on_w["metadata"]["name"]
    listed = c.ctl("-n", w.ip, "containers", "-k").stdout
    ref = next(word for word in listed.split() if word.startswith(f"default/{pod}:web:"))
    assert f"started {pod}" in c.ctl("-n", w.ip, "logs", "-k", ref).stdout
    assert c.ctl("-n", w.ip, "logs", "-k", f"default/{pod}", "--tail", "1").stdout.strip() == f"started {pod}"
    api_log = c.ctl("-n", cp.ip, "logs", "-k", f"kube-system/kube-apiserver-{cp.name}:kube-apiserver",
                    "--tail", "20").stdout
    assert len(api_log.splitlines()) == 20, api_log
    missing = c.ctl("-n", w.ip, "logs", "-k", "default/no-such-pod", check=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and "containers -k" in missing.stderr

    # a crashed kubelet is restarted by machined (with backoff) and shows in kosctl services
    def kubelet_line() -> str:
        return next(ln for ln in c.ctl("-n", w.ip, "services").stdout.splitlines() if " kubelet " in ln)
    assert "Running" in kubelet_line()
    killed = _kubelet_host_pid(c, w.name)
    assert killed > 0
    os.kill(killed, signal.SIGKILL)

    def kubelet_back() -> str | None:
        line = kubelet_line()
        again = _kubelet_host_pid(c, w.name) not in (0, killed)
        return line if again and "Running" in line and " OK " in line else None
    print(until("a new kubelet running and healthy in kosctl services", kubelet_back, timeout=60))
    until("worker Ready after its kubelet crashed", lambda: ready(c.get("node", w.name)), timeout=60)

    # an image that is not present (nor pullable): the pod and kosctl health name it
    patch = c.dir / "missing-image.yaml"
    patch.write_text(json.dumps({"cluster": {"coreDNS": {"image": MISSING_IMAGE}}}))
    c.ctl("-n", cp.ip, "patch", "machineconfig", "-p", f"@{patch}", "--mode", "no-reboot")

    def pull_failed() -> str | None:
        for p in c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]:
            for cs in p["status"].get("containerStatuses") or []:
                reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason", "")
                if reason in ("ErrImagePull", "ImagePullBackOff") and cs["image"] == MISSING_IMAGE:
                    return reason
        return None
    until("the CoreDNS pod reports the missing image", pull_failed, timeout=90)
    health = c.ctl("health", "--cluster", c.name, "--state-root", str(c.root), "--wait-timeout", "10", check=False)
    assert health.returncode != 0
    assert MISSING_IMAGE in health.stdout and "cannot be pulled" in health.stdout, health.stdout

    # the worker reboots and comes back Ready with its pod
    c.ctl("-n", w.ip, "reboot", "--wait", "--timeout", "120")
    until("worker Ready after reboot", lambda: ready(c.get("node", w.name)), timeout=120)
    until("a web pod running on the worker after reboot", lambda: w.name in _web_pods(c), timeout=120)

    # kosctl reset of the worker: cordon, drain, and its Node leaves; the web pod moves to the cp
    c.ctl("-n", w.ip, "reset", "--graceful", timeout=180)
    try:
        until("the worker's Node gone",
              lambda: w.name not in [n["metadata"]["name"] for n in c.get("nodes")["items"]], timeout=150)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{c.consoles()}") from None
    events = c.get("events", "-A", "--field-selector", "reason=Evicted")["items"] or []
    print(f"eviction events: {len(events)}")
    until("both web pods on the control plane", lambda: (
        len([p for p in c.get("pods", "-l", "app=web")["items"] if p["status"].get("phase") == "Running"
             and p["spec"]["nodeName"] == cp.name]) == 2), timeout=90)
