"""``kosctl memory``: each node's memory (MiB, like ``free -m``); ``kosctl processes``: each
node's processes (sortable by ``--sort rss|cpu|pid``)."""

from __future__ import annotations

import argparse

from kos.apis.kosctl import common


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("memory", aliases=["m", "free"], help="show memory usage")
    common.add_target_args(p)
    p.set_defaults(func=run_memory)
    ps = sub.add_parser("processes", aliases=["ps"], help="list processes")
    ps.add_argument("-s", "--sort", choices=["pid", "rss", "cpu"], default="pid", help="sort order (default pid)")
    common.add_target_args(ps)
    ps.set_defaults(func=run_processes)


def run_memory(args: argparse.Namespace) -> int:
    t = common.target(args)
    rows = [["NODE", "TOTAL", "USED", "FREE", "BUFFERS", "CACHE", "AVAILABLE"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        m = pb.MemoryResponse().parse(await conn.unary(auth.MACHINE + "Memory", b"", node=node)).meminfo
        mib = 1024 * 1024
        used = m.memtotal - m.memfree - m.buffers - m.cached
        rows.append([t.label(node)] + [str(v // mib) for v in (
            m.memtotal, used, m.memfree, m.buffers, m.cached, m.memavailable)])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def run_processes(args: argparse.Namespace) -> int:
    t = common.target(args)
    rows = [["NODE", "PID", "STATE", "THREADS", "CPU-TIME", "VIRTMEM", "RESMEM", "COMMAND"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        data = await conn.unary(auth.MACHINE + "Processes", b"", node=node)
        procs = list(pb.ProcessesResponse().parse(data).processes)
        key = {"pid": lambda p: p.pid, "rss": lambda p: -p.resident_memory, "cpu": lambda p: -p.cpu_time}[args.sort]
        for p in sorted(procs, key=key):
            rows.append([t.label(node), str(p.pid), p.state, str(p.threads), f"{p.cpu_time:.2f}",
                         _size(p.virtual_memory), _size(p.resident_memory), p.args or p.command])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc
