"""``kosctl dashboard``: a live terminal dashboard of the nodes (built on Textual), like
``talosctl dashboard``.

One node at a time, refreshed every ``--interval`` seconds through the API (os:reader is
enough): the summary (hostname, version, stage, uptime, CPU, load, memory, processes, services,
the cluster's members), the processes by CPU, the network (links, addresses, listening
sockets) and the node's logs (machined's own and the kernel's). Keys: ``←``/``→`` (or
``[``/``]``) switch nodes, ``1``-``4`` (or F1-F4) switch screens, ``q`` quits. Textual is an optional dependency:
``pip install 'kos[dashboard]'``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

M = "/kos.machine.MachineService/"
SCREENS = ("summary", "processes", "network", "logs")
EXAMPLES = """examples:
  kosctl dashboard                        the context's nodes
  kosctl dashboard -n 10.5.0.2,10.5.0.3 --interval 5
keys: left/right ([ ]) node, 1-4 (F1-F4) screen, q quit
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dashboard", help="a live terminal dashboard of the nodes", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    common.add_target_args(p)
    p.set_defaults(func=run)


@dataclass
class NodeData:
    """What the dashboard shows of one node (filled by ``fetch``)."""

    label: str
    version: str = ""
    platform: str = ""
    stage: str = ""
    stat: Any = None
    cpu_percent: float | None = None
    memory: Any = None
    processes: list[Any] = field(default_factory=list)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    services: list[Any] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    addresses: list[dict[str, Any]] = field(default_factory=list)
    listening: list[Any] = field(default_factory=list)
    kmsg: list[str] = field(default_factory=list)
    machined_log: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    updated: float = 0.0
    _prev_cpu: tuple[float, float] | None = None
    _prev_proc: dict[int, float] = field(default_factory=dict)
    _prev_time: float = 0.0


async def _specs(conn: common.Connection, node: str | None, ns: str, typ: str) -> list[dict[str, Any]]:
    import yaml

    from kos.apis.client import GrpcState
    from kos.resources.core import Kind

    st = GrpcState(conn, node=node, registry=None)
    out = []
    for r in await st.list(Kind(ns, typ)):
        spec = yaml.safe_load(getattr(r.spec, "yaml", "") or "") or {}
        out.append({"id": r.metadata.id, **(spec if isinstance(spec, dict) else {})})
    return out


async def fetch(conn: common.Connection, node: str | None, d: NodeData, part_timeout: float = 10.0) -> None:
    """Refresh ``d`` from the node; each part's failure (or ``part_timeout``) is kept in
    ``d.errors``; an unreachable node fails fast after its first part."""
    import anyio

    from kos.apis.gen.kos import machine as pb

    unreachable = False

    async def part(name: str, fn: Any) -> None:
        nonlocal unreachable
        if unreachable:
            return
        try:
            with anyio.fail_after(part_timeout):
                await fn()
            d.errors.pop(name, None)
        except TimeoutError:
            d.errors[name] = f"no answer within {part_timeout:g} s"
            unreachable = True
        except Exception as exc:
            d.errors[name] = str(exc)
            unreachable = "UNAVAILABLE" in str(exc)

    async def version() -> None:
        if not d.version:
            v = pb.VersionResponse().parse(await conn.unary(M + "Version", b"", node=node))
            d.version, d.platform = v.version.tag, v.platform.name

    async def stat() -> None:
        s = pb.SystemStatResponse().parse(await conn.unary(M + "SystemStat", b"", node=node))
        c = s.cpu_total
        busy = c.user + c.nice + c.system + c.irq + c.soft_irq + c.steal
        total = busy + c.idle + c.iowait
        if d._prev_cpu is not None and total > d._prev_cpu[1]:
            d.cpu_percent = 100.0 * (busy - d._prev_cpu[0]) / (total - d._prev_cpu[1])
        d._prev_cpu = (busy, total)
        d.stat = s

    async def memory() -> None:
        d.memory = pb.MemoryResponse().parse(await conn.unary(M + "Memory", b"", node=node)).meminfo

    async def processes() -> None:
        procs = list(pb.ProcessesResponse().parse(await conn.unary(M + "Processes", b"", node=node)).processes)
        now = time.monotonic()
        dt = now - d._prev_time if d._prev_time else 0.0
        d.cpu_by_pid = {p.pid: 100.0 * (p.cpu_time - d._prev_proc.get(p.pid, p.cpu_time)) / dt if dt else 0.0
                        for p in procs}
        d._prev_proc, d._prev_time = {p.pid: p.cpu_time for p in procs}, now
        d.processes = sorted(procs, key=lambda p: (-d.cpu_by_pid.get(p.pid, 0.0), -p.resident_memory))

    async def services() -> None:
        d.services = list(pb.ServiceListResponse().parse(await conn.unary(M + "ServiceList", b"", node=node)).services)

    async def machine() -> None:
        st = await _specs(conn, node, "runtime", "MachineStatuses.runtime.kos.dev")
        d.stage = str(st[0].get("stage", "")) if st else ""

    async def members() -> None:
        d.members = await _specs(conn, node, "cluster", "Members.cluster.kos.dev")

    async def network() -> None:
        d.links = await _specs(conn, node, "network", "LinkStatuses.net.kos.dev")
        d.addresses = await _specs(conn, node, "network", "AddressStatuses.net.kos.dev")
        req = pb.NetstatRequest(filter=pb.NetstatRequestFilter(pb.NetstatRequestFilter.LISTENING), pid=True)
        d.listening = list(pb.NetstatResponse().parse(await conn.unary(M + "Netstat", bytes(req), node=node)).records)

    async def kmsg() -> None:
        data = b""
        async with conn.stream(M + "Dmesg", bytes(pb.DmesgRequest()), node=node) as it:
            async for msg in it:
                data += pb.Data().parse(msg).bytes
        d.kmsg = data.decode(errors="replace").splitlines()[-200:]

    async def machined_log() -> None:
        data = b""
        req = pb.LogsRequest(id="machined", tail_lines=60)
        async with conn.stream(M + "Logs", bytes(req), node=node) as it:
            async for msg in it:
                data += pb.Data().parse(msg).bytes
        d.machined_log = data.decode(errors="replace").splitlines()[-60:]

    for name, fn in (("version", version), ("cpu", stat), ("memory", memory), ("processes", processes),
                     ("services", services), ("stage", machine), ("members", members), ("network", network),
                     ("kernel log", kmsg), ("machined log", machined_log)):
        await part(name, fn)
    d.updated = time.time()


def _mib(n: int) -> str:
    return f"{n / 1048576:.0f} MiB"


def _uptime(sec: float) -> str:
    sec = int(sec)
    days, rest = divmod(sec, 86400)
    return (f"{days}d " if days else "") + f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def render(d: NodeData, screen: str) -> Any:
    """The screen of ``d`` as a Rich renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if screen == "summary":
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        s = d.stat
        m = d.memory
        cpu = f"{d.cpu_percent:.1f}%" if d.cpu_percent is not None else "…"
        t.add_row("HOST", s.hostname if s else "…")
        t.add_row("VERSION", f"kos {d.version} ({d.platform})" if d.version else "…")
        t.add_row("STAGE", d.stage or "…")
        t.add_row("UPTIME", _uptime(s.uptime) if s else "…")
        t.add_row("CPU", f"{cpu} of {s.cpu_count} CPUs   load {s.load1:.2f} {s.load5:.2f} {s.load15:.2f}" if s else cpu)
        if m is not None:
            used = m.memtotal - m.memavailable
            t.add_row("MEMORY", f"{_mib(used)} used of {_mib(m.memtotal)} ({100 * used / max(m.memtotal, 1):.1f}%)")
        t.add_row("PROCESSES", f"{s.process_count} ({s.process_running} running)" if s else "…")
        parts.append(t)
        svc = Table(title="SERVICES", title_justify="left", expand=True)
        for col in ("SERVICE", "STATE", "HEALTH", "LAST EVENT"):
            svc.add_column(col)
        for sv in d.services:
            health = "?" if sv.health.unknown else ("OK" if sv.health.healthy else "FAIL")
            svc.add_row(sv.id, sv.state, health, sv.events[-1].msg if sv.events else "")
        parts.append(svc)
        mem = Table(title="CLUSTER MEMBERS", title_justify="left", expand=True)
        for col in ("HOSTNAME", "TYPE", "ADDRESSES"):
            mem.add_column(col)
        for mb in d.members:
            mem.add_row(str(mb.get("hostname") or mb["id"]), str(mb.get("machineType", "")),
                        ", ".join(map(str, mb.get("addresses") or [])))
        parts.append(mem)
    elif screen == "processes":
        pt = Table(title="PROCESSES (by CPU)", title_justify="left", expand=True)
        for col in ("PID", "STATE", "THREADS", "CPU%", "RES", "COMMAND"):
            pt.add_column(col, no_wrap=True)
        for p in d.processes[:60]:
            pt.add_row(str(p.pid), p.state, str(p.threads), f"{d.cpu_by_pid.get(p.pid, 0.0):.1f}",
                       _mib(p.resident_memory), (p.args or p.command)[:100])
        parts.append(pt)
    elif screen == "network":
        lt = Table(title="LINKS", title_justify="left", expand=True)
        for col in ("LINK", "STATE", "MTU", "HARDWARE ADDR"):
            lt.add_column(col)
        for lk in d.links:
            lt.add_row(str(lk["id"]), str(lk.get("operationalState", lk.get("operState", ""))),
                       str(lk.get("mtu", "")), str(lk.get("hardwareAddr", "")))
        at = Table(title="ADDRESSES", title_justify="left", expand=True)
        for col in ("ADDRESS", "LINK"):
            at.add_column(col)
        for a in d.addresses:
            at.add_row(str(a.get("address", a["id"])), str(a.get("linkName", "")))
        st = Table(title="LISTENING", title_justify="left", expand=True)
        for col in ("PROTO", "LOCAL", "PROCESS"):
            st.add_column(col)
        for r in d.listening[:40]:
            st.add_row(r.l4_proto, f"{r.localip}:{r.localport}", f"{r.pid}/{r.process}" if r.pid else "-")
        parts += [lt, at, st]
    else:
        parts.append(Text("MACHINED LOG", style="bold"))
        parts.append(Text("\n".join(d.machined_log[-15:]), no_wrap=True, overflow="ellipsis"))
        parts.append(Text("KERNEL LOG", style="bold"))
        parts.append(Text("\n".join(d.kmsg[-25:]), no_wrap=True, overflow="ellipsis"))
    for name, err in sorted(d.errors.items()):
        parts.append(Text(f"{name}: {err}", style="red"))
    return Group(*parts)


def make_app(t: common.Target, interval: float) -> Any:
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.containers import VerticalScroll
    from textual.widgets import Footer, Static

    labels = t.labels()

    class Dashboard(App[None]):
        TITLE = "kos dashboard"
        CSS = "#top { height: 1; background: $primary; color: $text; } #body { height: 1fr; }"
        BINDINGS = [
            Binding("q", "quit", "quit"),
            Binding("right,]", "node(1)", "next node"),
            Binding("left,[", "node(-1)", "previous node"),
            Binding("1,f1", "screen('summary')", "summary"),
            Binding("2,f2", "screen('processes')", "processes"),
            Binding("3,f3", "screen('network')", "network"),
            Binding("4,f4", "screen('logs')", "logs"),
        ]

        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.screen_name = "summary"
            self.data = {i: NodeData(t.label(n)) for i, n in enumerate(labels)}
            self.conn: Any = None
            self.busy: set[int] = set()

        def compose(self) -> ComposeResult:
            yield Static(id="top")
            with VerticalScroll(id="body"):
                yield Static(id="content")
            yield Footer()

        async def on_mount(self) -> None:
            self.conn = t.connect(timeout=max(interval * 3, 10.0))
            self.redraw()
            self.set_interval(interval, self.start_refresh)
            self.start_refresh()

        async def on_unmount(self) -> None:
            if self.conn is not None:
                self.conn.close()

        def start_refresh(self) -> None:
            """Refresh the shown node in the background (the keys stay responsive while a
            slow node answers); one refresh per node at a time."""
            i = self.index
            if i not in self.busy:
                self.busy.add(i)
                self.run_worker(self.refresh_node(i))

        async def refresh_node(self, i: int) -> None:
            try:
                await fetch(self.conn, labels[i], self.data[i], part_timeout=max(interval * 3, 5.0))
            finally:
                self.busy.discard(i)
            if i == self.index:
                self.redraw()

        def redraw(self) -> None:
            d = self.data[self.index]
            screens = "  ".join(f"[{n + 1}] {s.upper() if s == self.screen_name else s}"
                                for n, s in enumerate(SCREENS))
            from rich.text import Text

            self.query_one("#top", Static).update(
                Text(f" NODE {d.label} ({self.index + 1}/{len(labels)})   {screens}   [←/→] node  [q] quit"))
            self.query_one("#content", Static).update(render(d, self.screen_name))

        def action_node(self, step: int) -> None:
            self.index = (self.index + step) % len(labels)
            self.redraw()
            self.start_refresh()

        def action_screen(self, name: str) -> None:
            self.screen_name = name
            self.redraw()

    return Dashboard()


def run(args: argparse.Namespace) -> int:
    if args.interval < 0.2:
        raise CLIError(f"--interval {args.interval}: must be at least 0.2 seconds")
    try:
        import textual  # noqa: F401
    except ImportError:
        raise CLIError("kosctl dashboard needs the Textual library: pip install 'kos[dashboard]'") from None
    t = common.target(args)
    make_app(t, args.interval).run()
    return 0
