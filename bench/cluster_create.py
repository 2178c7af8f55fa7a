"""Local cluster figures (issue 9): ``python3 bench/cluster_create.py [--runs N] [--idle 30]``.

For 1 control plane + 1 worker and for 3 control planes + 1 worker, each run times
``kosctl cluster create`` (generate, start nodes, apply over the maintenance API, bootstrap
etcd, wait for health) until it reports healthy, and reads from the nodes:

* machined start to API listening: the keeper's start time of the node (before nodeinit
  and Python start) to the node's first ``api listening`` log line (maintenance API);
* RSS of machined (the node's PID 1) and of the whole node (every process of its PID
  namespace: machined, etcd, containerd);
* CPU of machined on the first control plane while idle, averaged over ``--idle`` seconds
  (1+1 cluster only).

Medians over the runs are printed; targets from the issue are shown next to them. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from kos.platform.provision.namespaces import ClusterState, node_pid1

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def api_listening_after_start(node_dir: Path) -> float | None:
    try:
        started = json.loads((node_dir / "keeper.json").read_text())["since"]
    except (OSError, ValueError, KeyError):
        return None
    for line in (node_dir / "console.log").read_text(errors="replace").splitlines():
        if '"api listening"' in line:
            ts = json.loads(line)["timestamp"]
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() - float(started)
    return None


def one_run(cps: int, workers: int, idle: float, root: Path) -> dict[str, float]:
    name = f"b{os.getpid() % 10000}{cps}{workers}"
    env = dict(os.environ, KOSCONFIG=str(root / "kosconfig"))
    cmd = [sys.executable, "-m", "kos.apis.kosctl.main", "cluster", "create", "--name", name,
           "--state-root", str(root), "--controlplanes", str(cps), "--workers", str(workers),
           "--wait-timeout", "180"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    try:
        if proc.returncode != 0:
            raise SystemExit(f"cluster create failed:\n{proc.stdout}\n{proc.stderr}")
        state = ClusterState.load(root / name)
        out: dict[str, float] = {"create_to_healthy_s": elapsed}
        starts = [api_listening_after_start(Path(n.dir)) for n in state.nodes]
        out["start_to_api_s"] = statistics.median([s for s in starts if s is not None])
        pid1s = [node_pid1(n) for n in state.nodes]
        out["machined_rss_mib"] = statistics.median(rss(p) for p in pid1s if p) / 2**20
        out["node_rss_mib"] = statistics.median(sum(rss(q) for q in descendants(p)) for p in pid1s if p) / 2**20
        if idle > 0:
            cp = pid1s[0]
            assert cp is not None
            time.sleep(3)  # let the boot settle
            c0, w0 = cpu_seconds(cp), time.monotonic()
            time.sleep(idle)
            out["machined_idle_cpu_pct"] = 100 * (cpu_seconds(cp) - c0) / (time.monotonic() - w0)
        return out
    finally:
        subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "cluster", "destroy", "--name", name,
                        "--state-root", str(root)], env=env, capture_output=True)


def main() -> int:
    print(conditions("cluster_create start"), flush=True)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measurement (0: skip)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("cluster_create: needs root (namespaces)", file=sys.stderr)
        return 2
    targets = {"create_to_healthy_s": "<= 60 s (3+1)", "start_to_api_s": "<= 1.5 s",
               "machined_rss_mib": "<= 80 MiB", "machined_idle_cpu_pct": "<= 1 %"}
    with tempfile.TemporaryDirectory(prefix="kos-bench-") as tmp:
        for cps, workers in ((1, 1), (3, 1)):
            runs = [one_run(cps, workers, args.idle if (cps, workers) == (1, 1) and i == 0 else 0, Path(tmp))
                    for i in range(args.runs)]
            print(f"== {cps} control plane(s) + {workers} worker, {args.runs} run(s), medians")
            for key in runs[0]:
                values = [r[key] for r in runs if key in r]
                print(f"  {key:<24} {statistics.median(values):8.2f}   target {targets.get(key, '-')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
