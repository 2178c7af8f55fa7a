"""``kosctl events [--tail N] [--duration D]``: stream the nodes' machine events (config
applied, service and sequence changes), one line each."""

from __future__ import annotations

import argparse

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("events", help="stream machine events")
    p.add_argument("--tail", type=int, default=0, help="past events to show first (-1: all; default 0)")
    p.add_argument("--since", help="past events of this period first (e.g. 10m; instead of --tail)")
    p.add_argument("--tail-id", default="", help="past events after this event id first (instead of --tail)")
    p.add_argument("--duration", help="stop after this long (e.g. 30s, 5m; default: until interrupted)")
    common.add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.tail < -1:
        raise CLIError(f"--tail {args.tail}: expected a number of events >= 0 (or -1 for all)")
    duration = common.parse_duration(args.duration, "--duration") if args.duration else None
    since = common.parse_duration(args.since, "--since") if args.since else 0
    t = common.target(args)
    widths = [16, 24, 10, 8]
    header = ["NODE", "ID", "TYPE", "ACTOR", "PAYLOAD"]

    def line(cells: list[str]) -> None:
        out = []
        for i, c in enumerate(cells[:-1]):
            widths[i] = max(widths[i], len(c))
            out.append(c.ljust(widths[i]))
        print("   ".join([*out, cells[-1]]).rstrip(), flush=True)

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        req = bytes(pb.EventsRequest(tail_events=args.tail, tail_id=args.tail_id, tail_seconds=int(since)))
        async with conn.stream(auth.MACHINE + "Events", req, node=node) as replies:
            async for data in replies:
                ev = pb.MachineEvent().parse(data)
                payload = " ".join(ev.payload.split())
                line([t.label(node), ev.id, ev.type, ev.actor_id or "-", payload])

    async def main() -> int:
        import anyio

        line(header)
        if duration is None:
            return await common.fan_out(t, call, timeout=None)
        with anyio.move_on_after(duration):
            return await common.fan_out(t, call, timeout=None)
        return 0

    return common.run(main)
