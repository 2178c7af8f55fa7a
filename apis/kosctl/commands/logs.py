"""``kosctl logs ID [-f] [--tail N]``: a service's log; ``kosctl logs -k ID``: a Kubernetes
container's log (ID as ``kosctl containers -k`` prints it, ``NAMESPACE/POD:CONTAINER`` or
``NAMESPACE/POD``), read from the kubelet's log files on the node, so it works while the API
server is down; ``kosctl dmesg [-f] [--tail]``: the kernel log. With several nodes every line
is prefixed with ``NODE: ``."""

from __future__ import annotations

import argparse
import sys

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", help="print a service's log, or machined's own")
    p.add_argument("id", metavar="ID", help="service id (see 'kosctl services'), machined, or with -k a Kubernetes "
                   "container: NAMESPACE/POD[:CONTAINER[:ID]] (see 'kosctl containers -k')")
    p.add_argument("-k", "--kubernetes", action="store_true",
                   help="ID is a Kubernetes container (its log from the kubelet's files on the node)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, default=-1, help="only the last N lines (default: all)")
    common.add_target_args(p)
    p.set_defaults(func=run_logs)
    d = sub.add_parser("dmesg", help="print the kernel log")
    d.add_argument("-f", "--follow", action="store_true", help="keep printing new messages")
    d.add_argument("--tail", action="store_true", help="only messages from now on (with --follow)")
    common.add_target_args(d)
    d.set_defaults(func=run_dmesg)


class _Lines:
    """Prefixes complete lines with the node when several nodes print at once."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.rest = b""

    def write(self, chunk: bytes) -> None:
        if not self.prefix:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        data = self.rest + chunk
        *lines, self.rest = data.split(b"\n")
        out = b"".join(self.prefix.encode() + line + b"\n" for line in lines)
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()

    def close(self) -> None:
        if self.rest:
            self.write(b"\n")


def _stream(args: argparse.Namespace, method: str, request: bytes) -> int:
    t = common.target(args)
    many = len(t.labels()) > 1

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis.gen.kos import machine as pb

        out = _Lines(f"{t.label(node)}: " if many else "")
        try:
            async with conn.stream(method, request, node=node) as replies:
                async for data in replies:
                    out.write(pb.Data().parse(data).bytes)
        finally:
            out.close()

    return common.run(lambda: common.fan_out(t, call, timeout=None))


def run_logs(args: argparse.Namespace) -> int:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb

    if args.tail < -1:
        raise CLIError(f"--tail {args.tail}: expected a number of lines >= 0 (or -1 for all)")
    if args.tail == 0:
        return 0
    req = pb.LogsRequest(namespace="k8s.io" if args.kubernetes else "", id=args.id, follow=args.follow,
                         tail_lines=max(args.tail, 0))
    return _stream(args, auth.MACHINE + "Logs", bytes(req))


def run_dmesg(args: argparse.Namespace) -> int:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb

    return _stream(args, auth.MACHINE + "Dmesg", bytes(pb.DmesgRequest(follow=args.follow, tail=args.tail)))
