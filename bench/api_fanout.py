"""Memory of the endpoint under node fan-out (issue 15 item 7):
``python -m bench.api_fanout [--clients 50,100] [--duration 30] [--after 60] [--runs 1]``.

A 1 control plane + 2 worker namespace cluster; ``--clients`` concurrent clients, each with
its own mutual-TLS connection to the control plane's endpoint (like as many kosctl
processes), repeat for ``--duration`` seconds what ``kosctl -n cp,w1,w2 get machinestatus`` +
``version`` do: a Version and a List through the endpoint to every node (two of three
forwarded). RSS of the control plane's machined is sampled every second: before the load
(the same-run baseline), during it (median and maximum) and ``--after`` seconds after the
clients ended (target: back under 100 MiB, and bounded under load). Load average and a
calibration loop are printed before and after. Needs root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

from bench.localnodes import LocalCluster, conditions, rss

MiB = 1 << 20


async def _load(ctx: object, nodes: list[str], clients: int, duration: float) -> tuple[int, int]:
    from kos.apis import auth
    from kos.apis.client import APIError, Connection, GrpcState
    from kos.resources.runtime import MACHINE_STATUSES

    calls = errors = 0
    deadline = time.monotonic() + duration

    async def client() -> None:
        nonlocal calls, errors
        while time.monotonic() < deadline:
            async with Connection.from_context(ctx, timeout=30) as conn:  # type: ignore[arg-type]
                for node in nodes:
                    try:
                        await conn.unary(auth.MACHINE + "Version", b"", node=node)
                        await GrpcState(conn, node=node).list(MACHINE_STATUSES)
                        calls += 2
                    except (APIError, Exception):
                        errors += 1

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(client)
    return calls, errors


def _sample(pid: int, stop: threading.Event, out: list[int]) -> None:
    while not stop.wait(1.0):
        out.append(rss(pid))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--clients", default="50,100", help="comma-separated numbers of concurrent clients")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--after", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    from kos.apis.client import ClientConfig

    print(conditions("before"))
    with tempfile.TemporaryDirectory(prefix="kos-bench-") as tmp, LocalCluster(Path(tmp), 1, 2, "f") as c:
        _, ctx = ClientConfig.load(Path(tmp) / "kosconfig").current(c.name)
        nodes = [n.ip for n in c.state.nodes]
        cp = c.pid1("cp-1")
        time.sleep(10)
        print(f"== RSS of cp-1's machined (MiB); fan-out to {len(nodes)} nodes, {args.duration:.0f} s of load")
        print(f"  {'clients':>7} {'before':>7} {'load med':>9} {'load max':>9} {'+' + str(int(args.after)) + ' s':>7}"
              f" {'calls/s':>8} {'errors':>6}   target: < 100 after, bounded under load")
        for n in (int(x) for x in args.clients.split(",")):
            rows = []
            for _ in range(args.runs):
                before = rss(cp)
                samples: list[int] = []
                stop = threading.Event()
                t = threading.Thread(target=_sample, args=(cp, stop, samples), daemon=True)
                t.start()
                t0 = time.monotonic()
                calls, errors = anyio.run(_load, ctx, nodes, n, args.duration)
                elapsed = time.monotonic() - t0
                stop.set()
                t.join()
                time.sleep(args.after)
                rows.append((before, statistics.median(samples or [0]), max(samples or [0]), rss(cp),
                             calls / elapsed, errors))
            med = [statistics.median(r[i] for r in rows) for i in range(6)]
            print(f"  {n:>7} {med[0] / MiB:7.0f} {med[1] / MiB:9.0f} {med[2] / MiB:9.0f} {med[3] / MiB:7.0f}"
                  f" {med[4]:8.0f} {med[5]:6.0f}")
    print(conditions("after"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
