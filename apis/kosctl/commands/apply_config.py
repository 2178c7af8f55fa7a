"""``kosctl apply-config -f FILE [-p PATCH ...] [--mode auto|no-reboot|reboot|staged|try]
[--timeout D] [--dry-run] [--insecure]``: send a machine configuration to the nodes.

``--config-patch``/``-p`` (repeatable, ``@file`` or inline YAML/JSON, as for ``gen config``)
patches the file here, in order, before it is sent; a patch that does not apply or leaves an
invalid configuration is an error naming the patch and nothing is sent.

``--insecure`` talks to a node in maintenance mode (TLS without a client certificate; the
node's address comes from ``-e`` or ``-n``); a node accepts one configuration that way and
then serves mutual TLS only. ``--dry-run`` prints the diff against the node's configuration
and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

MODES = {"auto": 0, "no-reboot": 1, "reboot": 2, "staged": 3, "try": 4}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apply-config", aliases=["apply"], help="apply a machine configuration to the nodes")
    p.add_argument("-f", "--file", required=True, help="machine configuration file")
    p.add_argument("-p", "--config-patch", action="append", default=[], metavar="PATCH",
                   help="patch the file before sending it: @file or inline YAML/JSON (repeatable, in order)")
    p.add_argument("-m", "--mode", default="auto", help=f"how to apply: {', '.join(MODES)} (default auto)")
    p.add_argument("--timeout", help="with --mode try: how long before the change is rolled back (default 1m)")
    p.add_argument("--dry-run", action="store_true", help="only show what would change")
    p.add_argument("-i", "--insecure", action="store_true",
                   help="maintenance mode: TLS without a client certificate (first configuration only)")
    common.add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.mode not in MODES:
        raise CLIError(f"--mode {args.mode!r}: expected one of {', '.join(MODES)}")
    if args.timeout and args.mode != "try":
        raise CLIError("--timeout is only meaningful with --mode try")
    timeout = common.parse_duration(args.timeout, "--timeout") if args.timeout else 60.0
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise CLIError(f"--file {args.file!r}: {exc.strerror or exc}") from None
    if not data.strip():
        raise CLIError(f"--file {args.file!r}: the file is empty")
    if args.config_patch:
        data = _patched(args.file, data, args.config_patch)
    t = common.target(args, insecure=args.insecure)

    async def call(conn: common.Connection, node: str | None) -> None:
        from kos.apis import auth
        from kos.apis.gen.kos import machine as pb

        req = pb.ApplyConfigurationRequest(
            data=data, mode=pb.ApplyConfigurationRequestMode(MODES[args.mode]), dry_run=args.dry_run,
            try_timeout=timeout if args.mode == "try" else 0.0,
        )
        resp = pb.ApplyConfigurationResponse().parse(
            await conn.unary(auth.MACHINE + "ApplyConfiguration", bytes(req), node=node)
        )
        label = t.label(node)
        for w in resp.warnings:
            print(f"{label}: warning: {w}", file=sys.stderr, flush=True)
        if args.dry_run:
            print(f"{label}: {resp.mode_details}\n{resp.diff}", flush=True)
        else:
            print(f"{label}: {resp.mode_details}", flush=True)

    return common.run(lambda: common.fan_out(t, call))


def _patched(path: str, data: bytes, patch_args: list[str]) -> bytes:
    """The configuration of ``path`` with the ``--config-patch`` arguments applied in order."""
    from .edit import patch_text
    from .machineconfig import load_patches

    patches = load_patches(patch_args)
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise CLIError(f"--file {path!r}: not UTF-8 text (byte {exc.start}); a machine configuration is YAML") from None
    return patch_text(text, patches).encode()
