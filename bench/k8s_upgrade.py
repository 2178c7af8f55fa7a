"""``kosctl upgrade-k8s`` figure: ``python3 -m bench.k8s_upgrade [--runs N]``.

Each run creates a 1 control plane + 1 worker namespace cluster at KUBERNETES_VERSION (timed:
``kosctl cluster create`` until healthy, the baseline of the same run), then times ``kosctl
upgrade-k8s --to KUBERNETES_UPGRADE_VERSION`` to the end, and the phases as its progress lines
arrive (checks, control plane, kube-proxy, kubelets), then destroys the cluster. Printed: the
medians over the runs, the upgrade / create ratio, and the load average with a calibration
loop before and after (a shared 2-core machine: compare ratios). Needs root and both built
releases (``rootfs-build/k8s/build`` and ``rootfs-build/k8s/build --version ...``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.calibrate import beside, conditions
from kos.platform.image import k8s
from kos.resources.versions import KUBERNETES_UPGRADE_VERSION, KUBERNETES_VERSION

PHASES = (("checks", "checking that every node holds"), ("control plane", "updating control plane on"),
          ("kube-proxy", "updating kube-proxy to version"), ("kubelets", "updating kubelet to version"))


def kosctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "kos.apis.kosctl.main", *args]


def one_run(tmp: Path, show: bool) -> tuple[float, float, dict[str, float]]:
    name = "b" + uuid.uuid4().hex[:6]
    root = tmp / "clusters"
    env = dict(os.environ, KOSCONFIG=str(tmp / f"kosconfig-{name}"))
    t0 = time.monotonic()
    create = subprocess.run(kosctl("cluster", "create", "--name", name, "--state-root", str(root),
                                   "--controlplanes", "1", "--workers", "1", "--wait-timeout", "300"),
                            env=env, capture_output=True, text=True, timeout=900)
    created = time.monotonic() - t0
    try:
        if create.returncode != 0:
            raise SystemExit(f"cluster create failed:\n{create.stdout[-3000:]}\n{create.stderr[-3000:]}")
        marks: dict[str, float] = {}
        t1 = time.monotonic()
        proc = subprocess.Popen(kosctl("--context", name, "upgrade-k8s", "--to", KUBERNETES_UPGRADE_VERSION,
                                       "--cluster", name, "--state-root", str(root)),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if show:
                print(f"  {time.monotonic() - t1:6.1f} s  {line.rstrip()}", flush=True)
            for phase, prefix in PHASES:
                if line.startswith(prefix) and phase not in marks:
                    marks[phase] = time.monotonic() - t1
        err = proc.stderr.read() if proc.stderr else ""
        rc = proc.wait()
        upgraded = time.monotonic() - t1
        if rc != 0:
            raise SystemExit(f"upgrade-k8s failed ({rc}): {err[-3000:]}")
        starts = [marks.get(p, upgraded) for p, _ in PHASES] + [upgraded]
        phases = {p: starts[i + 1] - starts[i] for i, (p, _) in enumerate(PHASES)}
        phases["discovery"] = starts[0]
        return created, upgraded, phases
    finally:
        subprocess.run(kosctl("cluster", "destroy", "--name", name, "--state-root", str(root)), env=env,
                       capture_output=True, timeout=300)


def main() -> int:
    p = argparse.ArgumentParser(prog="bench.k8s_upgrade", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--show", action="store_true", help="print upgrade-k8s's lines with their times")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (namespace clusters)")
    missing = [v for v in (KUBERNETES_VERSION, KUBERNETES_UPGRADE_VERSION) if v not in k8s.built_versions()]
    if missing:
        raise SystemExit(f"not built: {', '.join(missing)} (rootfs-build/k8s/build [--version V])")
    print(conditions("before"), flush=True)
    creates, upgrades, per_phase = [], [], []
    with tempfile.TemporaryDirectory(prefix="kos-bench-upgk8s-") as d:
        for i in range(args.runs):
            c, u, ph = one_run(Path(d), args.show)
            creates.append(c)
            upgrades.append(u)
            per_phase.append(ph)
            print(f"run {i + 1}: cluster create {c:.1f} s, upgrade-k8s {u:.1f} s "
                  f"({', '.join(f'{k} {v:.1f} s' for k, v in ph.items())}) {beside()}", flush=True)
    c, u = statistics.median(creates), statistics.median(upgrades)
    print(f"1+1 cluster, median of {args.runs}: upgrade-k8s {KUBERNETES_VERSION} -> {KUBERNETES_UPGRADE_VERSION} "
          f"{u:.1f} s; baseline cluster create {c:.1f} s; ratio {u / c:.2f}")
    for phase in per_phase[0]:
        print(f"  {phase}: {statistics.median(ph[phase] for ph in per_phase):.1f} s")
    print(conditions("after"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
