"""``kosctl services``: the services of each node (state, health, last event);
``kosctl service ID``: one service's details and event history; ``kosctl service ID
start|stop|restart``: act on it (os:operator or os:admin)."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from kos.apis.kosctl import common


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("services", help="list the services of the nodes")
    common.add_target_args(p)
    p.set_defaults(func=run_list)
    s = sub.add_parser("service", help="show a service, or start/stop/restart it")
    s.add_argument("id", metavar="ID", help="service id")
    s.add_argument("action", nargs="?", choices=["status", "start", "stop", "restart"], default="status",
                   help="what to do (default: status)")
    common.add_target_args(s)
    s.set_defaults(func=run_service)


def _when(ts: datetime.datetime | None) -> str:
    if ts is None or ts.timestamp() <= 0:
        return ""
    delta = datetime.datetime.now(datetime.UTC) - ts
    secs = max(int(delta.total_seconds()), 0)
    if secs < 120:
        return f"{secs}s ago"
    if secs < 7200:
        return f"{secs // 60}m{secs % 60}s ago"
    return f"{secs // 3600}h{secs % 3600 // 60}m ago"


def _health(h: Any) -> str:
    if h is None or h.unknown:
        return "?"
    return "OK" if h.healthy else "Fail"


async def _list(conn: common.Connection, node: str | None) -> list[Any]:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb

    data = await conn.unary(auth.MACHINE + "ServiceList", b"", node=node)
    return list(pb.ServiceListResponse().parse(data).services)


def run_list(args: argparse.Namespace) -> int:
    t = common.target(args)
    rows: list[list[str]] = [["NODE", "SERVICE", "STATE", "HEALTH", "LAST CHANGE", "LAST EVENT"]]

    async def call(conn: common.Connection, node: str | None) -> None:
        for svc in await _list(conn, node):
            last = svc.events[-1] if svc.events else None
            rows.append([t.label(node), svc.id, svc.state, _health(svc.health),
                         _when(last.ts if last else None), last.msg if last else ""])

    rc = common.run(lambda: common.fan_out(t, call))
    common.table(rows)
    return rc


def run_service(args: argparse.Namespace) -> int:
    t = common.target(args)

    async def call(conn: common.Connection, node: str | None) -> None:
        from grpclib.const import Status

        from kos.apis import auth
        from kos.apis.client import APIError
        from kos.apis.gen.kos import machine as pb

        if args.action != "status":
            method = auth.MACHINE + "Service" + args.action.capitalize()
            data = await conn.unary(method, bytes(pb.ServiceRequest(id=args.id)), node=node)
            print(f"{t.label(node)}: {pb.ServiceActionResponse().parse(data).resp}", flush=True)
            return
        found = [s for s in await _list(conn, node) if s.id == args.id]
        if not found:
            raise APIError(t.label(node), Status.NOT_FOUND, f"service {args.id!r} not found")
        svc = found[0]
        rows = [["NODE", t.label(node)], ["ID", svc.id], ["STATE", svc.state], ["HEALTH", _health(svc.health)]]
        if svc.health and svc.health.last_message:
            rows.append(["LAST HEALTH MESSAGE", svc.health.last_message])
        for i, ev in enumerate(svc.events):
            rows.append(["EVENTS" if i == 0 else "", f"[{ev.state}]: {ev.msg} ({_when(ev.ts)})"])
        common.table(rows)

    return common.run(lambda: common.fan_out(t, call))
