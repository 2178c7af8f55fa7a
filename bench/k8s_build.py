"""Benchmark: the Kubernetes build (``rootfs-build/k8s/build``), cold and warm.

``python bench/k8s_build.py [--skip-cold] [--warm-runs N]`` prints:

* cold build: a fresh output directory, an empty Go build cache and an empty Go module cache
  (so the module downloads through the proxy count, as on CI's first run on a new machine),
  total and per part (kubernetes, coredns, flannel, cni-flannel, pause, cni, images);
* warm build: the same output directory again (the "second run only checks" path), median
  of N runs, and cold / warm;
* the CPU time (user+sys) of the cold build, which contention on a shared machine does not
  inflate the way it inflates wall time;
* the load average before and after, and a calibration loop (a fixed pure-Python loop, median
  of 5) before and after, to compare runs on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "rootfs-build" / "k8s" / "build"


def calibrate() -> float:
    """Seconds for a fixed CPU-bound loop (median of 5): the machine's speed right now."""
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        acc = 0
        for i in range(2_000_000):
            acc = (acc + i * i) % 1_000_003
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def build(out: Path, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    proc = subprocess.run([str(BUILD), "--out", str(out)], env={**os.environ, **env}, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit(f"build failed ({proc.returncode})")
    return wall, json.loads((out / "build.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--skip-cold", action="store_true", help="only the warm check (uses the real cache)")
    p.add_argument("--warm-runs", type=int, default=5)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    cal0 = calibrate()
    print(f"calibration loop before: {cal0 * 1000:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="kos-bench-k8s-", dir=os.environ.get("KOS_BENCH_TMP")) as tmp:
        t = Path(tmp)
        env: dict[str, str] = {}
        if args.skip_cold:
            from kos.platform.image import k8s

            out = k8s.cache_dir()
        else:
            out = t / "k8s" / "out"
            env = {"GOCACHE": str(t / "gocache"), "GOMODCACHE": str(t / "gomod")}
            debs = out.parent / "debs"  # reuse the downloaded .debs: the figure is the build, not apt
            shutil.copytree(Path.home() / ".cache/kos/k8s/debs", debs, dirs_exist_ok=True)
            print("== cold build (empty Go build and module caches)")
            cpu0 = child_cpu()
            wall, summary = build(out, env)
            cpu = child_cpu() - cpu0
            print(f"cold build: {wall:8.1f} s wall, {cpu:8.1f} s CPU (user+sys of the build and its children; "
                  f"CPU / {os.cpu_count()} cores = {cpu / (os.cpu_count() or 1):.0f} s: the wall time on an idle "
                  f"machine if the build kept every core busy)")
            steps = summary["steps"]
            assert isinstance(steps, dict)
            for step, secs in steps.items():
                print(f"  {step:<12} {secs:8.1f} s")
        print(f"== warm build x{args.warm_runs} (everything cached: checks only)")
        warm = [build(out, env)[0] for _ in range(args.warm_runs)]
        med = statistics.median(warm)
        print(f"warm build: {med:8.2f} s (median of {len(warm)}, min {min(warm):.2f}, max {max(warm):.2f})")
        if not args.skip_cold:
            print(f"cold / warm: {wall / med:8.0f} x")
        if not args.skip_cold:
            subprocess.run(["chmod", "-R", "u+w", str(t / "gomod")], check=False)  # module cache is read-only
    cal1 = calibrate()
    print(f"calibration loop after: {cal1 * 1000:.0f} ms (after / before {cal1 / cal0:.2f})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
