"""``kosctl bootstrap [--recover-from FILE]``: start the etcd cluster on one control-plane node
(once per cluster). With ``--recover-from`` the snapshot (from ``kosctl etcd snapshot``) is
uploaded first (EtcdRecover) and the new cluster starts from its data."""

from __future__ import annotations

import argparse
from pathlib import Path

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bootstrap", help="bootstrap the etcd cluster on one control-plane node")
    p.add_argument("--recover-from", metavar="FILE", help="an etcd snapshot to start the cluster from")
    p.add_argument("--recover-skip-hash-check", action="store_true",
                   help="accept a snapshot without an integrity hash (e.g. copied from a data dir)")
    common.add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t = common.target(args)
    if len(t.nodes) > 1:
        raise CLIError(f"bootstrap exactly one node, got {len(t.nodes)} (-n {','.join(t.nodes)})")
    node = t.nodes[0] if t.nodes else None
    snapshot = Path(args.recover_from) if args.recover_from else None
    if snapshot is not None and not snapshot.is_file():
        raise CLIError(f"--recover-from {args.recover_from!r}: no such file")
    if args.recover_skip_hash_check and snapshot is None:
        raise CLIError("--recover-skip-hash-check needs --recover-from FILE")

    async def main() -> None:
        from kos.apis.etcd import machine as etcd_api

        async with t.connect() as conn:
            if snapshot is not None:
                size = await etcd_api.recover_upload(conn, snapshot, node=node)
                print(f"{t.label(node)}: uploaded {size} bytes of snapshot {snapshot}", flush=True)
            await etcd_api.bootstrap(conn, node=node, recover=snapshot is not None,
                                     skip_hash_check=args.recover_skip_hash_check)
        print(f"{t.label(node)}: bootstrap requested", flush=True)

    common.run(main)
    return 0
