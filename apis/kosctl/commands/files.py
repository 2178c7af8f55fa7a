"""The node's files: ``kosctl ls``, ``read``, ``cp``, ``usage`` and ``mounts``.

The node serves only paths under its file roots (/var, /etc, /proc, /sys, /run, /usr, /opt,
/lib, /boot) and withholds what may hold secrets (its state directory, etcd's data, pki
directories, keys, kubeconfigs); ``ls`` and ``usage`` are os:reader, ``read`` and ``cp``
os:admin (file contents), as in Talos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

LS_EXAMPLES = """examples:
  kosctl ls /var/log                  the entries of /var/log
  kosctl ls -l -r -d 2 /etc           long format, two levels deep
  kosctl ls -t d /run                 directories only (f: files, d: directories, l: symlinks)
"""
READ_EXAMPLES = """examples:
  kosctl read /proc/cpuinfo
  kosctl read /etc/resolv.conf -n 10.5.0.3
"""
CP_EXAMPLES = """examples:
  kosctl cp /var/log ./logs          extract the node's /var/log into ./logs
  kosctl cp /etc/cri - > cri.tar.gz  the gzip'd tar archive on stdout
  kosctl cp /var/log out -n a,b      one sub-directory per node: out/a, out/b
"""
USAGE_EXAMPLES = """examples:
  kosctl usage /var                  the total size of /var
  kosctl usage -d 1 /var /run        each directory below them, one level deep
  kosctl usage -a -t 1M /var/log     files and directories of at least 1 MB
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("ls", aliases=["list"], help="list a directory on the nodes", epilog=LS_EXAMPLES,
                       formatter_class=fmt)
    p.add_argument("path", nargs="?", default="/", help="directory (default /: the roots the node serves)")
    p.add_argument("-l", "--long", action="store_true", help="mode, uid, gid, size and modification time")
    p.add_argument("-r", "--recurse", action="store_true", help="descend into directories")
    p.add_argument("-d", "--depth", type=int, default=0, help="with -r: how deep (default unlimited)")
    p.add_argument("-t", "--type", action="append", default=[], choices=["f", "d", "l"],
                   help="only entries of this type (repeatable)")
    p.add_argument("-H", "--humanize", action="store_true", help="sizes in KiB/MiB/GiB")
    common.add_target_args(p)
    p.set_defaults(func=run_ls)

    r = sub.add_parser("read", aliases=["cat"], help="print a file of a node", epilog=READ_EXAMPLES,
                       formatter_class=fmt)
    r.add_argument("path", help="absolute path of a regular file")
    common.add_target_args(r)
    r.set_defaults(func=run_read)

    c = sub.add_parser("cp", aliases=["copy"], help="copy a file or directory from the nodes", epilog=CP_EXAMPLES,
                       formatter_class=fmt)
    c.add_argument("src", help="absolute path on the node")
    c.add_argument("dest", nargs="?", default=".", help="local directory to extract into, or - for the archive")
    common.add_target_args(c)
    c.set_defaults(func=run_cp)

    u = sub.add_parser("usage", aliases=["du"], help="disk usage of paths on the nodes", epilog=USAGE_EXAMPLES,
                       formatter_class=fmt)
    u.add_argument("paths", nargs="*", default=["/var"], help="paths (default /var)")
    u.add_argument("-d", "--depth", type=int, default=0, help="show entries this many levels below each path")
    u.add_argument("-a", "--all", action="store_true", help="files too, not only directories")
    u.add_argument("-t", "--threshold", default="0",
                   help="only sizes >= N (e.g. 10M, 1G); -N: only sizes <= N")
    u.add_argument("-H", "--humanize", action="store_true", help="sizes in KiB/MiB/GiB")
    common.add_target_args(u)
    u.set_defaults(func=run_usage)

    m = sub.add_parser("mounts", aliases=["mount"], help="the nodes' mounts with their sizes")
    common.add_target_args(m)
    m.set_defaults(func=run_mounts)


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def parse_size(text: str, what: str) -> int:
    import re

    m = re.fullmatch(r"(-?)(\d+)([KMGT]i?)?B?", text.strip(), re.IGNORECASE)
    if not m:
        raise CLIError(f"{what} {text!r}: expected a size such as 100, 10K, 5M, 1G (optionally negative)")
    sign, digits, unit = m.groups()
    scale = 1
    if unit:
        base = 1024 if unit.lower().endswith("i") else 1000
        scale = base ** ("KMGT".index(unit[0].upper()) + 1)
    return int(digits) * scale * (-1 if sign else 1)


def _mode(mode: int) -> str:
    import stat

    return stat.filemode(mode)


def _ts(sec: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(sec, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_ls(args: argparse.Namespace) -> int:
    if args.depth < 0:
        raise CLIError(f"--depth {args.depth}: must be >= 0")
    if not args.path.startswith("/"):
        raise CLIError(f"path {args.path!r}: give an absolute path on the node (e.g. /var/log)")
    t = common.target(args)
    long_ = args.long
    rows = [["NODE", "MODE", "UID", "GID", "SIZE(B)", "LASTMOD", "NAME"] if long_ else ["NODE", "NAME"]]
    errors: list[str] = []

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        types = [{"f": 0, "d": 1, "l": 2}[x] for x in args.type]
        req = pb.ListRequest(root=args.path, recurse=args.recurse, recursion_depth=args.depth,
                             types=[pb.ListRequestType(x) for x in types])
        label = t.label(node)
        async with conn.stream(auth.MACHINE + "List", bytes(req), node=node) as it:
            async for data in it:
                f = pb.FileInfo().parse(data)
                name = f.relative_name or f.name
                if f.error:
                    errors.append(f"{label}: {f.name}: {f.error}")
                    continue
                if f.link:
                    name += f" -> {f.link}"
                if long_:
                    size = human(f.size) if args.humanize else str(f.size)
                    rows.append([label, _mode(f.mode), str(f.uid), str(f.gid), size, _ts(f.modified), name])
                else:
                    rows.append([label, name])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return rc


def run_read(args: argparse.Namespace) -> int:
    t = common.target(args)
    if len(t.nodes) > 1:
        raise CLIError(f"read prints one node's file, got {len(t.nodes)} nodes (-n {','.join(t.nodes)})")
    node = t.nodes[0] if t.nodes else None

    async def main() -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        out = sys.stdout.buffer
        async with t.connect(None) as conn, conn.stream(
            auth.MACHINE + "Read", bytes(pb.ReadRequest(path=args.path)), node=node
        ) as it:
            async for data in it:
                out.write(pb.Data().parse(data).bytes)
                out.flush()

    common.run(main)
    return 0


def run_cp(args: argparse.Namespace) -> int:
    import tempfile

    t = common.target(args)
    to_stdout = args.dest == "-"
    if to_stdout and len(t.nodes) > 1:
        raise CLIError("cp to - (stdout) takes one node; give a directory for several")
    dest = Path(args.dest)
    if not to_stdout and dest.exists() and not dest.is_dir():
        raise CLIError(f"destination {args.dest!r} exists and is not a directory")

    async def call(conn: common.Connection, node: str | None) -> None:
        import anyio

        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as buf:  # big trees spill to disk
            async with conn.stream(auth.MACHINE + "Copy", bytes(pb.CopyRequest(root_path=args.src)), node=node,
                                   timeout=None) as it:
                async for data in it:
                    chunk = pb.Data().parse(data).bytes
                    if to_stdout:
                        sys.stdout.buffer.write(chunk)
                    else:
                        buf.write(chunk)
            if to_stdout:
                sys.stdout.buffer.flush()
                return
            target = dest / t.label(node).replace(":", "_") if len(t.labels()) > 1 else dest
            buf.seek(0)
            skipped = await anyio.to_thread.run_sync(extract, buf, target)
        for s in skipped:
            print(f"{t.label(node)}: warning: not extracted: {s}", file=sys.stderr, flush=True)
        print(f"{t.label(node)}: {args.src} -> {target}", file=sys.stderr, flush=True)

    return common.run(lambda: common.fan_out(t, call, timeout=None))


def extract(archive: Any, target: Path) -> list[str]:
    """Extract a gzip'd tar into ``target``; members the ``data`` filter refuses (absolute
    paths, links out of the tree, devices) are skipped and returned (blocking)."""
    import tarfile

    skipped: list[str] = []

    def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, path)
        except tarfile.FilterError as exc:
            skipped.append(f"{member.name} ({exc})")
            return None

    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=archive, mode="r:gz") as tar:
        tar.extractall(target, filter=safe)
    return skipped


def run_usage(args: argparse.Namespace) -> int:
    if args.depth < 0:
        raise CLIError(f"--depth {args.depth}: must be >= 0")
    threshold = parse_size(args.threshold, "--threshold")
    for p in args.paths:
        if not p.startswith("/"):
            raise CLIError(f"path {p!r}: give an absolute path on the node (e.g. /var)")
    t = common.target(args)
    rows = [["NODE", "NAME", "SIZE"]]
    errors: list[str] = []

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        req = pb.DiskUsageRequest(recursion_depth=args.depth, all=args.all, threshold=threshold, paths=args.paths)
        label = t.label(node)
        async with conn.stream(auth.MACHINE + "DiskUsage", bytes(req), node=node, timeout=None) as it:
            async for data in it:
                d = pb.DiskUsageInfo().parse(data)
                if d.error:
                    errors.append(f"{label}: {d.name}: {d.error}")
                    continue
                rows.append([label, d.name, human(d.size) if args.humanize else str(d.size)])

    rc = common.run(lambda: common.fan_out(t, call, timeout=None))
    common.table(rows)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return rc


def run_mounts(args: argparse.Namespace) -> int:
    t = common.target(args)
    rows = [["NODE", "FILESYSTEM", "TYPE", "SIZE(GB)", "USED(GB)", "AVAILABLE(GB)", "PERCENT USED", "MOUNTED ON"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        resp = pb.MountsResponse().parse(await conn.unary(auth.MACHINE + "Mounts", b"", node=node))
        for m in resp.stats:
            used = m.size - m.available
            pct = f"{100 * used / m.size:.2f}%" if m.size else "-"
            rows.append([t.label(node), m.filesystem, m.type, f"{m.size / 1e9:.02f}", f"{used / 1e9:.02f}",
                         f"{m.available / 1e9:.02f}", pct, m.mounted_on])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc
