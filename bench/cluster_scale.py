"""How local clusters scale (issue 17): ``python -m bench.cluster_scale [--sizes 1+1,3+1,3+10,3+20]
[--k8s]``.

For each size, ``kosctl cluster create`` of a namespace cluster is timed until it reports
healthy; then the RSS of every node (machined and the whole node: etcd, containerd ...) is read
from /proc, and ``kosctl health``, ``kosctl -n <every node> get members`` and ``kosctl cluster
destroy`` are timed. The marginal seconds and MiB per added worker are the slope from the
smallest 3-control-plane size to each larger one; the 3+20 time is shown as a ratio of the 3+1
time (target <= 3x). Kubernetes is off (``KOS_K8S_DIR`` = an empty directory) unless ``--k8s``:
23 nodes' Kubernetes components do not fit on 2 busy cores, and this measures kos itself.

The load average and a calibration loop are printed before every size (a busy machine slows
everything: compare ratios within one run). Needs root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.localnodes import conditions, descendants, rss
from kos.platform.provision.namespaces import ClusterState, node_pid1


def kosctl(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env,
                          capture_output=True, text=True)
    return time.monotonic() - t0, proc


def one_size(cps: int, workers: int, root: Path, k8s: bool, timeout: float) -> dict[str, float]:
    name = f"s{os.getpid() % 10000}x{cps}x{workers}"
    env = dict(os.environ, KOSCONFIG=str(root / f"{name}.kosconfig"))
    if not k8s:
        (root / "no-k8s").mkdir(exist_ok=True)
        env["KOS_K8S_DIR"] = str(root / "no-k8s")
    out: dict[str, float] = {}
    try:
        t, proc = kosctl(env, "cluster", "create", "--name", name, "--state-root", str(root),
                         "--controlplanes", str(cps), "--workers", str(workers), "--wait-timeout", str(timeout))
        out["create_to_healthy_s"] = t
        if proc.returncode != 0:
            failed = [ln.strip() for ln in proc.stdout.splitlines() if "FAILED" in ln]
            print(f"  note: cluster create exit {proc.returncode}: {'; '.join(failed) or proc.stderr[-400:]}")
            out["healthy"] = 0.0
        else:
            out["healthy"] = 1.0
        state = ClusterState.load(root / name)
        pids = [p for p in (node_pid1(n) for n in state.nodes) if p]
        out["machined_rss_mib_total"] = sum(rss(p) for p in pids) / 2**20
        out["node_rss_mib_total"] = sum(rss(q) for p in pids for q in descendants(p)) / 2**20
        t, proc = kosctl(env, "health", "--cluster", name, "--state-root", str(root), "--wait-timeout", "60")
        out["health_s"] = t if proc.returncode == 0 else float("nan")
        addresses = ",".join(n.address.split("/")[0] for n in state.nodes)
        t, proc = kosctl(env, "-n", addresses, "get", "members")
        rows = max(0, len(proc.stdout.splitlines()) - 1)
        out["get_members_all_s"] = t if proc.returncode == 0 else float("nan")
        out["get_members_rows"] = rows
    finally:
        t, proc = kosctl(env, "cluster", "destroy", "--name", name, "--state-root", str(root))
        out["destroy_s"] = t
    return out


def parse_size(text: str) -> tuple[int, int]:
    cps, _, workers = text.partition("+")
    return int(cps), int(workers)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--sizes", default="1+1,3+1,3+10,3+20")
    p.add_argument("--k8s", action="store_true", help="run Kubernetes in the nodes when its binaries are built")
    p.add_argument("--wait-timeout", type=float, default=600.0)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("cluster_scale: needs root (namespaces)", file=sys.stderr)
        return 2
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    results: dict[tuple[int, int], dict[str, float]] = {}
    print(f"Kubernetes in the nodes: {'on (if built)' if args.k8s else 'off (KOS_K8S_DIR = empty dir)'}")
    with tempfile.TemporaryDirectory(prefix="kos-scale-") as tmp:
        for cps, workers in sizes:
            print(conditions(f"before {cps}+{workers}"), flush=True)
            r = one_size(cps, workers, Path(tmp), args.k8s, args.wait_timeout)
            results[(cps, workers)] = r
            print(f"== {cps}+{workers}: healthy {'yes' if r.get('healthy') else 'NO'} in "
                  f"{r['create_to_healthy_s']:.1f} s; machined RSS {r['machined_rss_mib_total']:.0f} MiB total, "
                  f"nodes {r['node_rss_mib_total']:.0f} MiB; health {r['health_s']:.2f} s; "
                  f"get members -n all {r['get_members_all_s']:.2f} s ({r['get_members_rows']:.0f} rows); "
                  f"destroy {r['destroy_s']:.2f} s", flush=True)
    print(conditions("after"))
    base = min((s for s in results if s[0] == 3), key=lambda s: s[1], default=None)
    if base is not None:
        b = results[base]
        for size, r in results.items():
            if size[0] != 3 or size == base:
                continue
            added = size[1] - base[1]
            ratio = r["create_to_healthy_s"] / b["create_to_healthy_s"]
            print(f"  {size[0]}+{size[1]} vs {base[0]}+{base[1]}: time x{ratio:.2f}"
                  f" (target <= 3x for 3+20); per added worker "
                  f"{(r['create_to_healthy_s'] - b['create_to_healthy_s']) / added:.2f} s, "
                  f"{(r['node_rss_mib_total'] - b['node_rss_mib_total']) / added:.0f} MiB (whole node), "
                  f"{(r['machined_rss_mib_total'] - b['machined_rss_mib_total']) / added:.0f} MiB (machined)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
