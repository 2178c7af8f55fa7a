"""Diagnostics and disks: ``kosctl netstat``, ``time``, ``stats``, ``images``, ``disks``,
``wipe disk``, ``meta`` and ``inspect dependencies``.

Reads are os:reader; ``wipe disk`` and ``meta write|delete`` need os:admin.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

NETSTAT_EXAMPLES = """examples:
  kosctl netstat                      connected sockets (TCP/UDP, v4/v6)
  kosctl netstat -l -p                listening sockets with their processes
  kosctl netstat -a --tcp -n a,b      every TCP v4 socket of two nodes
"""
TIME_EXAMPLES = """examples:
  kosctl time                         the offset against the configured time servers
  kosctl time --check pool.ntp.org    against another server (host or host:port)
"""
WIPE_EXAMPLES = """examples:
  kosctl wipe disk sdb                signatures, partition tables, first/last MiB
  kosctl wipe disk sdb sdc --method zeroes
  kosctl wipe disk sdb2 --drop-partition  wipe the partition, then remove it from the GPT
The node refuses its system disk and any mounted or held device.
"""
META_EXAMPLES = """examples:
  kosctl meta list
  kosctl meta write mykey some-value
  kosctl meta delete mykey
"""
DEPS_EXAMPLES = """examples:
  kosctl inspect dependencies | dot -Tpng > graph.png
  kosctl inspect dependencies --with-resources=false -n 10.5.0.2
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    n = sub.add_parser("netstat", aliases=["ss"], help="the nodes' network sockets", epilog=NETSTAT_EXAMPLES,
                       formatter_class=fmt)
    g = n.add_mutually_exclusive_group()
    g.add_argument("-a", "--all", action="store_true", help="connected and listening sockets")
    g.add_argument("-l", "--listening", action="store_true", help="only listening sockets")
    n.add_argument("-p", "--programs", action="store_true", help="show the process owning each socket")
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        n.add_argument(f"--{proto}", action="store_true", help=f"{proto} sockets (default: all protocols)")
    common.add_target_args(n)
    n.set_defaults(func=run_netstat)

    t = sub.add_parser("time", help="the nodes' clock offset against an NTP server", epilog=TIME_EXAMPLES,
                       formatter_class=fmt)
    t.add_argument("-c", "--check", default="", help="NTP server to check against (default: the configured ones)")
    common.add_target_args(t)
    t.set_defaults(func=run_time)

    st = sub.add_parser("stats", help="CPU and memory of the containers containerd runs on the nodes")
    group = st.add_mutually_exclusive_group()
    group.add_argument("-k", "--kubernetes", action="store_true", help="the k8s.io namespace (Kubernetes pods)")
    group.add_argument("--namespace", help="a containerd namespace (default system)")
    group.add_argument("--all", action="store_true", help="every containerd namespace")
    common.add_target_args(st)
    st.set_defaults(func=run_stats)

    im = sub.add_parser("images", help="the container images containerd holds on the nodes")
    group = im.add_mutually_exclusive_group()
    group.add_argument("-k", "--kubernetes", action="store_true", help="the k8s.io namespace (Kubernetes images)")
    group.add_argument("--namespace", help="a containerd namespace (default system)")
    common.add_target_args(im)
    im.set_defaults(func=run_images, all=False)

    d = sub.add_parser("disks", help="the nodes' disks (the system disk marked)")
    common.add_target_args(d)
    d.set_defaults(func=run_disks)

    w = sub.add_parser("wipe", help="wipe block devices (os:admin)")
    wsub = w.add_subparsers(dest="wipe_what", metavar="disk")
    wd = wsub.add_parser("disk", help="wipe disks or partitions of a node", epilog=WIPE_EXAMPLES, formatter_class=fmt)
    wd.add_argument("devices", nargs="+", help="device names (sdb, vdb1, loop3 or /dev/...)")
    wd.add_argument("--method", choices=["fast", "zeroes"], default="fast", help="fast (default) or zeroes")
    wd.add_argument("--drop-partition", action="store_true",
                    help="a partition: also remove it from the disk's partition table")
    common.add_target_args(wd)
    wd.set_defaults(func=run_wipe)
    w.set_defaults(func=lambda args: _usage(w))

    m = sub.add_parser("meta", help="the keys of the system disk's META partition", epilog=META_EXAMPLES,
                       formatter_class=fmt)
    msub = m.add_subparsers(dest="meta_cmd", metavar="COMMAND")
    ml = msub.add_parser("list", aliases=["ls", "get"], help="list the META keys")
    common.add_target_args(ml)
    ml.set_defaults(func=run_meta_list)
    mw = msub.add_parser("write", help="write a META key (os:admin)")
    mw.add_argument("key")
    mw.add_argument("value")
    common.add_target_args(mw)
    mw.set_defaults(func=run_meta_write)
    md = msub.add_parser("delete", help="delete a META key (os:admin)")
    md.add_argument("key")
    common.add_target_args(md)
    md.set_defaults(func=run_meta_delete)
    m.set_defaults(func=lambda args: _usage(m))

    i = sub.add_parser("inspect", help="inspect the node's internals")
    isub = i.add_subparsers(dest="inspect_what", metavar="dependencies")
    dep = isub.add_parser("dependencies", aliases=["deps"], epilog=DEPS_EXAMPLES, formatter_class=fmt,
                          help="the controller/resource graph as graphviz dot, with live reconcile counts and errors")
    dep.add_argument("--with-resources", default="true", choices=["true", "false"],
                     help="draw resource types (false: controllers only, an edge per shared type)")
    common.add_target_args(dep)
    dep.set_defaults(func=run_dependencies)
    i.set_defaults(func=lambda args: _usage(i))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _pb() -> Any:
    from kos.apis.gen.kos import machine as pb

    return pb


M = "/kos.machine.MachineService/"


def run_netstat(args: argparse.Namespace) -> int:
    pb = _pb()
    t = common.target(args)
    f = pb.NetstatRequestFilter.ALL if args.all else (
        pb.NetstatRequestFilter.LISTENING if args.listening else pb.NetstatRequestFilter.CONNECTED)
    req = pb.NetstatRequest(filter=f, tcp=args.tcp, tcp6=args.tcp6, udp=args.udp, udp6=args.udp6,
                            pid=args.programs)
    head = ["NODE", "PROTO", "RECV-Q", "SEND-Q", "LOCAL ADDRESS", "FOREIGN ADDRESS", "STATE"]
    rows = [head + (["PID/PROGRAM"] if args.programs else [])]

    def addr(ip: str, port: int) -> str:
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    async def call(conn: common.Connection, node: str | None) -> None:
        resp = pb.NetstatResponse().parse(await conn.unary(M + "Netstat", bytes(req), node=node))
        for r in resp.records:
            row = [t.label(node), r.l4_proto, str(r.rxqueue), str(r.txqueue), addr(r.localip, r.localport),
                   addr(r.remoteip, r.remoteport) if r.remoteport or r.state != "LISTEN" else addr(r.remoteip, 0),
                   r.state]
            if args.programs:
                row.append(f"{r.pid}/{r.process}" if r.pid else "-")
            rows.append(row)

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_time(args: argparse.Namespace) -> int:
    pb = _pb()
    t = common.target(args)
    rows = [["NODE", "NTP-SERVER", "NODE-TIME", "NTP-SERVER-TIME", "OFFSET", "RTT"]]

    def ts(v: Any) -> str:
        return str(v.strftime("%Y-%m-%dT%H:%M:%S.%f"))[:-3] + "Z"

    async def call(conn: common.Connection, node: str | None) -> None:
        r = pb.TimeResponse().parse(await conn.unary(M + "Time", bytes(pb.TimeRequest(server=args.check)), node=node))
        rows.append([t.label(node), r.server, ts(r.localtime), ts(r.remotetime), f"{r.offset:+.6f}s",
                     f"{r.rtt * 1000:.3f}ms"])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_stats(args: argparse.Namespace) -> int:
    from .containers import namespace_of

    pb = _pb()
    t = common.target(args)
    req = pb.StatsRequest(namespace=namespace_of(args))
    rows = [["NODE", "NAMESPACE", "ID", "MEMORY(MB)", "CPU"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        r = pb.StatsResponse().parse(await conn.unary(M + "Stats", bytes(req), node=node))
        for s in r.stats:
            rows.append([t.label(node), s.namespace, s.id, f"{s.memory_usage / 1e6:.2f}",
                         f"{s.cpu_usage / 1e9:.3f}s"])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_images(args: argparse.Namespace) -> int:
    from .containers import namespace_of

    pb = _pb()
    t = common.target(args)
    req = pb.ImageListRequest(namespace=namespace_of(args))
    rows = [["NODE", "IMAGE", "DIGEST", "SIZE", "PLATFORMS"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        async with conn.stream(M + "ImageList", bytes(req), node=node) as it:
            async for data in it:
                i = pb.ImageListResponse().parse(data)
                rows.append([t.label(node), i.name, i.digest, f"{i.size / 1e6:.1f} MB", i.platforms])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_disks(args: argparse.Namespace) -> int:
    t = common.target(args)
    rows = [["NODE", "DEV", "MODEL", "SERIAL", "TRANSPORT", "SIZE", "RO", "SYSTEM"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        import yaml

        from kos.apis.client import GrpcState
        from kos.resources.core import Kind, Pointer

        from .get import _api_error

        st = GrpcState(conn, node=node, registry=None)
        try:
            disks = await st.list(Kind("runtime", "Disks.block.kos.dev"))
            system = await st.get_or_none(Pointer("runtime", "SystemDisks.block.kos.dev", "system-disk"))
        except Exception as exc:
            raise _api_error(exc, t.label(node)) from None
        sysdev = ""
        if system is not None:
            sysdev = str((yaml.safe_load(system.spec.yaml) or {}).get("devPath", ""))
        for r in disks:
            s = yaml.safe_load(r.spec.yaml) or {}
            dev = str(s.get("devPath") or f"/dev/{r.metadata.id}")
            rows.append([t.label(node), dev, str(s.get("model", "")) or "-", str(s.get("serial", "")) or "-",
                         str(s.get("transport", "")) or "-", str(s.get("prettySize", "")) or str(s.get("size", 0)),
                         str(bool(s.get("readonly", False))).lower(), "*" if dev == sysdev else ""])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_wipe(args: argparse.Namespace) -> int:
    pb = _pb()
    t = common.target(args)
    method = pb.BlockDeviceWipeRequestDeviceMethod.ZEROES if args.method == "zeroes" else \
        pb.BlockDeviceWipeRequestDeviceMethod.FAST
    req = pb.BlockDeviceWipeRequest(devices=[
        pb.BlockDeviceWipeRequestDevice(device=d, method=method, drop_partition=args.drop_partition)
        for d in args.devices])

    async def call(conn: common.Connection, node: str | None) -> None:
        r = pb.BlockDeviceWipeResponse().parse(
            await conn.unary(M + "BlockDeviceWipe", bytes(req), node=node, timeout=3600))
        print(f"{t.label(node)}: wiped {', '.join(r.wiped)}", flush=True)

    return common.run(lambda: common.fan_out(t, call, timeout=3600))


def run_meta_list(args: argparse.Namespace) -> int:
    pb = _pb()
    t = common.target(args)
    rows = [["NODE", "KEY", "VALUE"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        r = pb.MetaListResponse().parse(await conn.unary(M + "MetaList", b"", node=node))
        rows.extend([t.label(node), k.key, k.value] for k in r.keys)

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_meta_write(args: argparse.Namespace) -> int:
    pb = _pb()
    t = common.target(args)

    async def call(conn: common.Connection, node: str | None) -> None:
        await conn.unary(M + "MetaWrite", bytes(pb.MetaWriteRequest(key=args.key, value=args.value)), node=node)
        print(f"{t.label(node)}: wrote META key {args.key}", flush=True)

    return common.run(lambda: common.fan_out(t, call))


def run_meta_delete(args: argparse.Namespace) -> int:
    pb = _pb()
    t = common.target(args)

    async def call(conn: common.Connection, node: str | None) -> None:
        await conn.unary(M + "MetaDelete", bytes(pb.MetaDeleteRequest(key=args.key)), node=node)
        print(f"{t.label(node)}: deleted META key {args.key}", flush=True)

    return common.run(lambda: common.fan_out(t, call))


def dependencies_dot(resp: Any, with_resources: bool = True) -> str:
    """The graph as graphviz dot: boxes are controllers labelled with their live counters (red
    when they have failed, with the last error), ellipses resource types; inputs point from a
    type to a controller (solid strong, dashed weak, dotted destroy-ready), outputs from a
    controller to a type (solid exclusive, dashed shared)."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    style = {"output_exclusive": "solid", "output_shared": "dashed", "input_weak": "dashed",
             "input_strong": "solid", "input_destroy_ready": "dotted", "input_q_primary": "bold",
             "input_q_mapped": "dashed", "input_q_mapped_destroy_ready": "dotted"}
    lines = ["digraph controllers {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    stats = {c.name: c for c in resp.controllers}
    names = sorted({e.controller for e in resp.edges} | set(stats))
    for name in names:
        c = stats.get(name)
        label = name
        color = ""
        if c is not None:
            label += f"\nreconciles {c.reconciles}  errors {c.errors}  restarts {c.restarts}  queue {c.queue_depth}"
            if c.last_error:
                label += f"\nlast error: {c.last_error[:120]}"
            if c.errors or c.crashes:
                color = ", color=red, fontcolor=red"
        lines.append(f"  {q('ctrl:' + name)} [label={q(label)}, shape=box{color}];")
    if with_resources:
        for typ in sorted({e.type for e in resp.edges}):
            lines.append(f"  {q('type:' + typ)} [label={q(typ)}, shape=ellipse];")
        for e in resp.edges:
            st = style.get(e.edge_type, "solid")
            if e.edge_type.startswith("output"):
                lines.append(f"  {q('ctrl:' + e.controller)} -> {q('type:' + e.type)} [style={st}];")
            else:
                label = e.edge_type.removeprefix("input_") + (f" id={e.id}" if e.id else "")
                lines.append(f"  {q('type:' + e.type)} -> {q('ctrl:' + e.controller)} [style={st}, label={q(label)}];")
    else:
        writers: dict[str, list[str]] = {}
        for e in resp.edges:
            if e.edge_type.startswith("output"):
                writers.setdefault(e.type, []).append(e.controller)
        seen = set()
        for e in resp.edges:
            if e.edge_type.startswith("input"):
                for w in writers.get(e.type, []):
                    if (w, e.controller, e.type) not in seen and w != e.controller:
                        seen.add((w, e.controller, e.type))
                        lines.append(f"  {q('ctrl:' + w)} -> {q('ctrl:' + e.controller)} [label={q(e.type)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_dependencies(args: argparse.Namespace) -> int:
    pb = _pb()
    t = common.target(args)
    if len(t.nodes) > 1:
        raise CLIError(f"inspect dependencies draws one node's graph, got {len(t.nodes)} nodes")
    node = t.nodes[0] if t.nodes else None

    async def main() -> None:
        async with t.connect() as conn:
            r = pb.ControllerRuntimeDependenciesResponse().parse(
                await conn.unary(M + "ControllerRuntimeDependencies", b"", node=node))
        if not r.controllers and not r.edges:
            print(f"{t.label(node)}: no controllers run on this node", file=sys.stderr)
        sys.stdout.write(dependencies_dot(r, args.with_resources == "true"))

    common.run(main)
    return 0
