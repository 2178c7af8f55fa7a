"""Kubernetes on kos, figures (issue 13): ``python3 -m bench.k8s_cluster [--runs N] [--sizes 1+1,3+1]``.

For each cluster size, each run times ``kosctl cluster create`` until every Node is ``Ready``
(create waits for the Kubernetes health checks: Nodes Ready, static pods, kube-proxy,
CoreDNS), and then reads:

* RSS of machined (each node's PID 1), of each kubelet and of each kube-apiserver
  (host processes found by their node's cgroup ``kos-<cluster>-<node>``), medians over nodes;
* ``kubectl get nodes`` latency through the forwarded API port (median of 20 calls), beside
  ``kubectl version --client`` (the same binary starting, no API call) as its baseline.

Baseline for the create time, in the same run: the same cluster created without Kubernetes
(``KOS_K8S_DIR`` pointing at an empty directory: the kubelet waits for its binary and the
Kubernetes checks are skipped), so the ratio is what Kubernetes adds. Load average and a
fixed CPU calibration loop are printed before and after (timings on a shared 2-core machine
are noisy: compare ratios). Medians over the runs. Needs root and the built artifacts
(``rootfs-build/k8s``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kos.platform.provision.kubernetes import Artifacts
from kos.platform.provision.namespaces import ClusterState, node_pid1

PAGE = os.sysconf("SC_PAGE_SIZE")


def calibration() -> float:
    """Seconds for a fixed pure-Python loop (the machine's speed right now)."""
    t0 = time.perf_counter()
    x = 0
    for i in range(3_000_000):
        x += i * i % 7
    return time.perf_counter() - t0


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


def procs_in(cgroup: str, comm: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if Path(p, "comm").read_text().strip() == comm and f"/{cgroup}/" in Path(p, "cgroup").read_text():
                out.append(int(p.name))
        except OSError:
            continue
    return out


def kosctl(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def timed(cmd: list[str], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def one_run(cps: int, workers: int, root: Path, *, kubernetes: bool) -> dict[str, float]:
    name = f"kb{os.getpid() % 1000}{cps}{workers}{int(kubernetes)}"
    env = dict(os.environ, KOSCONFIG=str(root / "kosconfig"))
    if not kubernetes:
        empty = root / "no-k8s"
        empty.mkdir(exist_ok=True)
        env["KOS_K8S_DIR"] = str(empty)
    t0 = time.monotonic()
    proc = kosctl(env, "cluster", "create", "--name", name, "--state-root", str(root), "--controlplanes", str(cps),
                  "--workers", str(workers), "--wait-timeout", "400")
    elapsed = time.monotonic() - t0
    try:
        if proc.returncode != 0:
            raise SystemExit(f"cluster create failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        out: dict[str, float] = {"create_s": elapsed}
        if not kubernetes:
            return out
        assert "all k8s nodes to report ready: OK" in proc.stdout, proc.stdout
        state = ClusterState.load(root / name)
        pid1s = [p for p in (node_pid1(n) for n in state.nodes) if p]
        out["machined_rss_mib"] = statistics.median(rss(p) for p in pid1s) / 2**20
        kubelets = [p for n in state.nodes for p in procs_in(n.cgroup, "kubelet")]
        apiservers = [p for n in state.nodes for p in procs_in(n.cgroup, "kube-apiserver")]
        out["kubelet_rss_mib"] = statistics.median(rss(p) for p in kubelets) / 2**20
        out["apiserver_rss_mib"] = statistics.median(rss(p) for p in apiservers) / 2**20
        kubectl = str(Artifacts.locate().bin_dir / "kubectl")
        kubeconfig = str(root / name / "kubeconfig")
        out["kubectl_get_nodes_s"] = timed([kubectl, "--kubeconfig", kubeconfig, "get", "nodes"], 20)
        out["kubectl_client_only_s"] = timed([kubectl, "version", "--client"], 20)
        return out
    finally:
        kosctl(env, "cluster", "destroy", "--name", name, "--state-root", str(root))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sizes", default="1+1,3+1", help="comma-separated CONTROLPLANES+WORKERS")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("k8s_cluster: needs root (namespaces)", file=sys.stderr)
        return 2
    if not Artifacts.locate().has_kubelet():
        print(f"k8s_cluster: no built kubelet in {Artifacts.locate().bin_dir} (run rootfs-build/k8s/build.py)",
              file=sys.stderr)
        return 2
    print(f"load average {load()}; calibration loop {calibration():.3f} s")
    with tempfile.TemporaryDirectory(prefix="kos-bench-k8s-") as tmp:
        for size in args.sizes.split(","):
            cps, workers = (int(x) for x in size.split("+"))
            with_k8s, without = [], []
            for _ in range(args.runs):
                without.append(one_run(cps, workers, Path(tmp), kubernetes=False))
                with_k8s.append(one_run(cps, workers, Path(tmp), kubernetes=True))
            base = statistics.median(r["create_s"] for r in without)
            k8s = statistics.median(r["create_s"] for r in with_k8s)
            target = "  (target <= 90 s)" if (cps, workers) == (1, 1) else ""
            print(f"== {cps} control plane(s) + {workers} worker(s), {args.runs} run(s), medians")
            print(f"  create -> every Node Ready      {k8s:7.1f} s{target}")
            print(f"  baseline: create without k8s    {base:7.1f} s   ratio {k8s / base:.2f}")
            for key in ("machined_rss_mib", "kubelet_rss_mib", "apiserver_rss_mib"):
                print(f"  {key:<31} {statistics.median(r[key] for r in with_k8s):7.1f} MiB")
            get = statistics.median(r["kubectl_get_nodes_s"] for r in with_k8s)
            client = statistics.median(r["kubectl_client_only_s"] for r in with_k8s)
            print(f"  kubectl get nodes               {get * 1000:7.0f} ms")
            print(f"  baseline: kubectl --client      {client * 1000:7.0f} ms   ratio {get / client:.2f}")
            print(f"  load average {load()}")
    print(f"load average {load()}; calibration loop {calibration():.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
