"""kosctl entry point: builds the argparse tree from the command modules and runs one."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from kos.apis.kosctl import commands, examples
from kos.apis.kosctl.errors import CLIError

VERSION = "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kosctl", description="kosctl: manage kos nodes through their gRPC API."
    )
    parser.add_argument("--kosconfig", help="client config file (default $KOSCONFIG or ~/.kos/config)")
    parser.add_argument("--context", help="context to use from the client config")
    parser.add_argument("-e", "--endpoints", help="comma-separated API endpoints (host[:port])")
    parser.add_argument("-n", "--nodes", help="comma-separated target nodes (proxied through the endpoint)")
    parser.add_argument("--version", action="version", version=f"kosctl {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    examples.apply(parser)  # --help examples for commands without their own
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (kosctl get ... | head): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
