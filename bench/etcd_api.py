"""Benchmark: etcd driven through the machine API, three in-process control-plane nodes
(controllers + supervisor + mTLS API each, real etcd on loopback).

Prints medians of
* Bootstrap RPC -> healthy 3-member cluster: from the Bootstrap call on node 0 until every
  node's etcd is healthy and EtcdMemberList (through the API) shows three started voters; the
  other two nodes join by themselves (learner add, start, promote). Also the part until node 0
  alone is healthy. Target <= 10 s.
* etcd crash -> healthy: SIGKILL of one node's etcd until the supervisor has restarted it and it
  is healthy again. Target <= 5 s.

Usage: python -m bench.etcd_api [--runs 3] [--crashes 5]
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

from kos.apis.client import APIError
from kos.apis.etcd import machine as etcd_api
from tests.support.nodecluster import NodeCluster

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]


async def three_voters(cl: NodeCluster) -> None:
    conn = cl.connect(0)
    while True:
        try:
            members = await etcd_api.member_list(conn)
            voters = len(members) == 3 and all(m.hostname and not m.is_learner for m in members)
            if voters and all(n.supervisor.status("etcd").healthy for n in cl.nodes):
                return
        except APIError:
            pass
        await anyio.sleep(0.02)


async def one_run(crashes: int) -> tuple[float, float, list[float]]:
    with tempfile.TemporaryDirectory(prefix="kos-bench-etcdapi-") as d:
        async with NodeCluster(Path(d), 3) as cl:
            sup0 = cl.nodes[0].supervisor
            t0 = time.monotonic()
            await etcd_api.bootstrap(cl.connect(0))
            await sup0.wait_healthy("etcd", timeout=30)
            first = time.monotonic() - t0
            with anyio.fail_after(60):
                await three_voters(cl)
            formed = time.monotonic() - t0
            recoveries = []
            for k in range(crashes):
                sup = cl.nodes[k % 3].supervisor
                before = sup.status("etcd")
                t1 = time.monotonic()
                os.kill(before.pid, signal.SIGKILL)
                await sup.wait_for("etcd", lambda s, r=before.restarts: s.restarts > r, timeout=10)
                await sup.wait_healthy("etcd", timeout=30)
                recoveries.append(time.monotonic() - t1)
            return first, formed, recoveries


async def main(runs: int, crashes: int) -> None:
    print(conditions("etcd_api start"), flush=True)
    firsts: list[float] = []
    formed: list[float] = []
    recovered: list[float] = []
    for i in range(runs):
        a, f, r = await one_run(crashes)
        firsts.append(a)
        formed.append(f)
        recovered.extend(r)
        print(f"run {i + 1}: node 0 healthy {a:.2f}s, 3 voters {f:.2f}s; "
              f"crash->healthy {', '.join(f'{x:.2f}' for x in r)}s", flush=True)
    print(f"Bootstrap RPC -> node 0 healthy:          median {statistics.median(firsts):.2f}s (n={len(firsts)})")
    print(f"Bootstrap RPC -> healthy 3-member cluster: median {statistics.median(formed):.2f}s "
          f"(min {min(formed):.2f}, max {max(formed):.2f}, n={len(formed)}; target <= 10s)")
    print(f"etcd crash -> healthy again:               median {statistics.median(recovered):.2f}s "
          f"(min {min(recovered):.2f}, max {max(recovered):.2f}, n={len(recovered)}; target <= 5s)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--crashes", type=int, default=5)
    a = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(main, a.runs, a.crashes)
