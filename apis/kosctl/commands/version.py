"""``kosctl version``: the client version and each node's server version (``--client``: only
the client's)."""

from __future__ import annotations

import argparse

from kos.apis.kosctl import common


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("version", help="print the client and server versions")
    p.add_argument("--client", action="store_true", help="print only the client version")
    p.add_argument("--insecure", action="store_true", help="maintenance mode: TLS without a client certificate")
    common.add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import platform

    from kos.apis.kosctl.main import VERSION

    print(f"Client:\n\tTag:         {VERSION}\n\tPython:      {platform.python_version()}")
    if args.client:
        return 0
    t = common.target(args, insecure=args.insecure)

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        resp = pb.VersionResponse().parse(await conn.unary(auth.MACHINE + "Version", b"", node=node))
        v = resp.version
        print(
            f"Server:\n\tNODE:        {t.label(node)}\n\tTag:         {v.tag}\n\tPython:      {v.python_version}\n"
            f"\tOS/Arch:     {v.os}/{v.arch}\n\tPlatform:    {resp.platform.name}"
            + ("\n\tMaintenance: true" if resp.maintenance else ""),
            flush=True,
        )

    return common.run(lambda: common.fan_out(t, call))
