"""Benchmark: etcd under the kos supervisor, real 3-member mTLS clusters on loopback.

Prints medians of
* bootstrap -> healthy 3-member cluster (first member bootstrapped, two learner joins + promotes;
  target <= 10 s), and
* etcd crash (SIGKILL of one member) -> restarted and healthy again (target <= 5 s).

Usage: python -m bench.services_etcd [--runs 3] [--crashes 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import structlog

from tests.support.localcluster import LocalCluster

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]


async def one_run(crashes: int) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory(prefix="kos-bench-etcd-") as d:
        async with LocalCluster(Path(d), 3) as cl:
            t0 = time.monotonic()
            await cl.form()
            async with cl.client() as c:
                members = await c.member_list()
            formed = time.monotonic() - t0
            assert len(members) == 3 and not any(m.is_learner for m in members), members
            recoveries = []
            for k in range(crashes):
                m = cl.members[k % 3]
                sup = m.supervisor
                before = sup.status("etcd")
                t1 = time.monotonic()
                os.kill(before.pid, signal.SIGKILL)
                await sup.wait_for("etcd", lambda s, r=before.restarts: s.restarts > r, timeout=10)
                await sup.wait_healthy("etcd", timeout=30)
                recoveries.append(time.monotonic() - t1)
            return formed, recoveries


async def main(runs: int, crashes: int) -> None:
    print(conditions("services_etcd start"), flush=True)
    formed: list[float] = []
    recovered: list[float] = []
    for i in range(runs):
        f, r = await one_run(crashes)
        formed.append(f)
        recovered.extend(r)
        print(f"run {i + 1}: cluster formed in {f:.2f}s; crash->healthy {', '.join(f'{x:.2f}' for x in r)}s")
    print(f"bootstrap -> healthy 3-member cluster: median {statistics.median(formed):.2f}s "
          f"(min {min(formed):.2f}, max {max(formed):.2f}, n={len(formed)}; target <= 10s)")
    print(f"etcd crash -> healthy again:           median {statistics.median(recovered):.2f}s "
          f"(min {min(recovered):.2f}, max {max(recovered):.2f}, n={len(recovered)}; target <= 5s)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--crashes", type=int, default=5)
    a = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(main, a.runs, a.crashes)
