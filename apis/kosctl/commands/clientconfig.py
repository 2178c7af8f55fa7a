"""``kosctl get-client-config PATH [--roles R,...] [--crt-ttl D]``: have a node issue a client
certificate (GenerateClientConfiguration, os:admin only) and write a kosconfig with it, e.g.
a read-only one for monitoring: ``kosctl get-client-config reader.kosconfig --roles os:reader``.

The node names only itself as an endpoint, as it sees itself (``127.0.0.1:50000`` for a node of
a local cluster); the kosconfig written gets the endpoints (and nodes) this call went through,
so it works from where it was asked for."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

ROLES = ("os:admin", "os:operator", "os:reader", "os:etcd:backup")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("get-client-config", help="issue a client certificate and write a kosconfig with it")
    p.add_argument("path", metavar="PATH", help="file to write ('-' for stdout)")
    p.add_argument("--roles", default="os:admin", help=f"comma-separated roles ({', '.join(ROLES)}; default os:admin)")
    p.add_argument("--crt-ttl", default="8760h", help="certificate lifetime (default 8760h = 1 year)")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    common.add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    roles = common.split_list(args.roles)
    bad = [r for r in roles if r not in ROLES]
    if not roles or bad:
        raise CLIError(f"--roles {args.roles!r}: expected some of {', '.join(ROLES)}")
    ttl = common.parse_duration(args.crt_ttl, "--crt-ttl")
    out = None if args.path == "-" else Path(args.path)
    if out is not None and out.exists() and not args.force:
        raise CLIError(f"{out}: already exists (use --force to overwrite)")
    t = common.target(args)
    if len(t.labels()) > 1:
        raise CLIError("get-client-config: name one node (-n NODE)")
    result: list[bytes] = []

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        req = pb.GenerateClientConfigurationRequest(roles=roles, crt_ttl=int(ttl))
        data = await conn.unary(auth.MACHINE + "GenerateClientConfiguration", bytes(req), node=node)
        result.append(pb.GenerateClientConfigurationResponse().parse(data).kosconfig)

    rc = common.run(lambda: common.fan_out(t, call))
    if rc or not result:
        return rc or 1
    result[0] = _reachable_from_here(result[0], t)
    if out is None:
        sys.stdout.write(result[0].decode())
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(result[0])
    print(f"wrote {out} (roles {', '.join(roles)})")
    return 0


def _reachable_from_here(kosconfig: bytes, t: common.Target) -> bytes:
    """``kosconfig`` with the endpoints of the context used for this call (the one that reached
    the node) and the node named with ``-n``, if any."""
    from kos.apis.client import ClientConfig, ConfigError

    try:
        cfg = ClientConfig.parse(kosconfig.decode())
        _, ctx = cfg.current()
    except (ConfigError, UnicodeDecodeError) as exc:
        raise CLIError(f"the node answered with a kosconfig that does not parse: {exc}") from None
    ctx.endpoints = [t.endpoint, *(e for e in t.context.endpoints if e != t.endpoint)]
    ctx.nodes = list(t.nodes)
    return cfg.dump().encode()
