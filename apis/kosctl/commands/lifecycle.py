"""``kosctl reboot|shutdown|reset|upgrade|rollback``: the machine lifecycle RPCs, per node.

* ``reboot [--mode default|powercycle]``;
* ``shutdown [--force]``;
* ``reset [--graceful=true] [--reboot] [--system-labels-to-wipe STATE,EPHEMERAL]``: leave
  etcd (graceful, control planes), wipe the system volumes, then power off (or reboot);
* ``upgrade --image REF [--preserve] [--stage] [--force]``;
* ``rollback``: boot the previous good A/B slot (META flipped, then a reboot).

Each prints the node and the sequence's actor id; ``--wait`` then follows the node until it is
back (reboot, reset with ``--reboot``: its MachineStatus stage is ``running`` again after a
new boot) or gone (shutdown, reset: the API stops answering).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from kos.apis.kosctl.common import add_target_args, fan_out, run, target
from kos.apis.kosctl.errors import CLIError

M = "/kos.machine.MachineService/"
SYSTEM_LABELS = ("STATE", "EPHEMERAL", "META")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("reboot", help="reboot nodes")
    r.add_argument("-m", "--mode", choices=("default", "powercycle"), default="default")
    s = sub.add_parser("shutdown", help="shut nodes down")
    s.add_argument("--force", action="store_true", help="do not wait for services to stop gracefully")
    x = sub.add_parser("reset", help="reset nodes: leave etcd, wipe system volumes, power off")
    x.add_argument("--graceful", action=argparse.BooleanOptionalAction, default=True,
                   help="leave etcd first when the node is a member (default: yes)")
    x.add_argument("--reboot", action="store_true", help="reboot afterwards instead of powering off")
    x.add_argument("--system-labels-to-wipe", default="", metavar="LABELS",
                   help="comma-separated system volumes to wipe (default STATE,EPHEMERAL; also META)")
    u = sub.add_parser("upgrade", help="upgrade nodes to an installer image")
    u.add_argument("--image", required=True, help="installer image reference")
    u.add_argument("--preserve", action="store_true", help="keep EPHEMERAL data")
    u.add_argument("--stage", action="store_true", help="stage the upgrade for the next reboot")
    u.add_argument("--force", action="store_true", help="skip the etcd health check")
    b = sub.add_parser("rollback", help="reboot nodes into their previous good A/B boot slot")
    for p, fn in ((r, run_reboot), (s, run_shutdown), (x, run_reset), (u, run_upgrade), (b, run_rollback)):
        add_target_args(p)
        p.add_argument("--wait", action="store_true", help="follow the node until the action completed")
        p.add_argument("--timeout", type=float, default=120.0, help="with --wait: seconds (default 120)")
        p.set_defaults(func=fn)


def _call(args: argparse.Namespace, method: str, request: bytes, response: Any, verb: str, *,
          comes_back: bool) -> int:
    t = target(args)
    if args.timeout <= 0:
        raise CLIError(f"--timeout {args.timeout}: expected a positive number of seconds")

    async def one(conn: Any, node: str | None) -> None:
        before = await _boot_marker(conn, node) if args.wait else None
        resp = response().parse(await conn.unary(M + method, request, node=node))
        what = verb
        if method == "Rollback":
            what = f"{verb} from slot {resp.from_slot} to slot {resp.to_slot}"
        print(f"{t.label(node)}: {what} (actor {resp.actor_id})", flush=True)
        if args.wait:
            await _follow(conn, node, t.label(node), before, comes_back=comes_back, timeout=args.timeout)

    return run(lambda: fan_out(t, one, timeout=30))


async def _boot_marker(conn: Any, node: str | None) -> str | None:
    """The node's MachineStatus 'created' time: a new boot creates a new resource."""
    from kos.apis.client import GrpcState
    from kos.resources.runtime import MACHINE_STATUS_ID, MACHINE_STATUSES

    r = await GrpcState(conn, node=node).get(MACHINE_STATUSES.pointer(MACHINE_STATUS_ID))
    return str(r.metadata.created)


async def _follow(conn: Any, node: str | None, label: str, before: str | None, *, comes_back: bool,
                  timeout: float) -> None:
    import anyio

    from kos.apis.client import APIError, GrpcState
    from kos.resources.core import NotFoundError
    from kos.resources.runtime import MACHINE_STATUS_ID, MACHINE_STATUSES

    deadline = time.monotonic() + timeout
    went_down = False
    while time.monotonic() < deadline:
        try:
            r = await GrpcState(conn, node=node).get(MACHINE_STATUSES.pointer(MACHINE_STATUS_ID))
        except (APIError, NotFoundError):
            went_down = True
            if not comes_back:
                print(f"{label}: down", flush=True)
                return
            await anyio.sleep(0.5)
            continue
        if comes_back and (went_down or str(r.metadata.created) != before) and r.spec.stage == "running":
            print(f"{label}: back (stage running)", flush=True)
            return
        await anyio.sleep(0.5)
    raise CLIError(f"{label}: not {'back' if comes_back else 'down'} within {timeout:g} s")


def run_reboot(args: argparse.Namespace) -> int:
    from kos.apis.gen.kos import machine as pb

    mode = pb.RebootRequestMode(1 if args.mode == "powercycle" else 0)
    return _call(args, "Reboot", bytes(pb.RebootRequest(mode=mode)), pb.RebootResponse, "rebooting",
                 comes_back=True)


def run_shutdown(args: argparse.Namespace) -> int:
    from kos.apis.gen.kos import machine as pb

    return _call(args, "Shutdown", bytes(pb.ShutdownRequest(force=args.force)), pb.ShutdownResponse,
                 "shutting down", comes_back=False)


def parse_labels(text: str) -> list[str]:
    labels = [x.strip() for x in text.split(",") if x.strip()]
    for label in labels:
        if label not in SYSTEM_LABELS:
            raise CLIError(f"--system-labels-to-wipe: {label!r} is not a system volume, "
                           f"expected some of {', '.join(SYSTEM_LABELS)}")
    return labels


def run_reset(args: argparse.Namespace) -> int:
    from kos.apis.gen.kos import machine as pb

    labels = parse_labels(args.system_labels_to_wipe)
    req = pb.ResetRequest(graceful=args.graceful, reboot=args.reboot,
                          system_partitions_to_wipe=[pb.ResetPartitionSpec(label=x, wipe=True) for x in labels])
    return _call(args, "Reset", bytes(req), pb.ResetResponse, "resetting", comes_back=args.reboot)


def run_upgrade(args: argparse.Namespace) -> int:
    from kos.apis.gen.kos import machine as pb

    req = pb.UpgradeRequest(image=args.image, preserve=args.preserve, stage=args.stage, force=args.force)
    return _call(args, "Upgrade", bytes(req), pb.UpgradeResponse, "upgrading", comes_back=True)


def run_rollback(args: argparse.Namespace) -> int:
    from kos.apis.gen.kos import machine as pb

    return _call(args, "Rollback", bytes(pb.RollbackRequest()), pb.RollbackResponse, "rolling back",
                 comes_back=True)
