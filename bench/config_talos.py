"""Benchmark of Talos config compatibility (issue 16 part 3 figure): the share of Talos
configs (tests/machineconfig/testdata/talos: ``talosctl gen config`` output of v1.3 .. v1.14,
control plane and worker, and a v1.14 control plane patched with the documents Talos users
add) that load unmodified and validate in metal mode (target: all), with the median time to
load + validate each beside a kos-generated config measured in the same run (baseline), the
load average and a calibration loop.

Run: python -m bench.config_talos
"""

from __future__ import annotations

import os
import statistics
import time

from kos.resources import machineconfig as mc
from tests.machineconfig.talos_fixtures import talos_configs

RUNS = 15


def calibration() -> float:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        sum(i * i for i in range(300_000))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_time(text: str) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        mc.ConfigContainer.load(text).validate("metal")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    cal = calibration()
    print(f"calibration loop: {cal * 1000:.1f} ms")
    base = mc.generate(mc.GenOptions("bench", "https://10.5.0.2:6443"), mc.SecretsBundle.generate())
    baseline = load_time(base.controlplane.to_yaml())
    configs = talos_configs()
    loaded = 0
    print(f"{'config':40} {'result':8} {'load+validate':>14} {'vs kos gen':>10}")
    for name, text in configs.items():
        try:
            mc.ConfigContainer.load(text).validate("metal")
        except mc.ConfigErrors as exc:
            print(f"{name:40} {'FAILED':8} {str(exc).splitlines()[1][:60]}")
            continue
        loaded += 1
        t = load_time(text)
        print(f"{name:40} {'ok':8} {t * 1000:12.2f}ms {t / baseline:9.2f}x")
    print(f"\nTalos configs loading unmodified: {loaded}/{len(configs)} ({100 * loaded / len(configs):.0f}%, "
          f"target all); kos gen config baseline {baseline * 1000:.2f} ms; calibration {cal * 1000:.1f} ms; "
          f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
