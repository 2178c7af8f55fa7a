"""kosctl entry point: finds the command word in argv, imports only that command's module,
builds its argparse tree and runs it.

``kosctl --help`` (or no command) lists every command from ``commands.COMMANDS`` without
importing any command module or argparse; an unknown word falls back to the full tree (``build_parser``,
also used by ``kosctl completion`` and tests) so argparse names the choices. Nothing here does
work at import time: start-up is what a person feels on every command (docs/operations.md,
bench/kosctl_speed.py).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from kos.apis.kosctl import commands
from kos.apis.kosctl.errors import CLIError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

VERSION = "0.1.0"

# global options that take a value (so the word after them is not the command)
_VALUED = ("--kosconfig", "--context", "-e", "--endpoints", "-n", "--nodes")


GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("--kosconfig",), "KOSCONFIG", "client config file (default $KOSCONFIG or ~/.kos/config)"),
    (("--context",), "CONTEXT", "context to use from the client config"),
    (("-e", "--endpoints"), "ENDPOINTS", "comma-separated API endpoints (host[:port])"),
    (("-n", "--nodes"), "NODES", "comma-separated target nodes (proxied through the endpoint)"),
)
DESCRIPTION = "kosctl: manage kos nodes through their gRPC API."


def _root() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    import argparse

    parser = argparse.ArgumentParser(prog="kosctl", description=DESCRIPTION)
    for flags, metavar, text in GLOBAL_OPTIONS:
        parser.add_argument(*flags, metavar=metavar, help=text)
    parser.add_argument("--version", action="version", version=f"kosctl {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, sub


def overview_text() -> str:
    """``kosctl --help``: written from ``commands.COMMANDS`` and ``GLOBAL_OPTIONS`` without
    argparse (building 45 sub-parsers only to print their names cost more than the rest of
    the start-up)."""
    usage = " ".join(f"[{flags[0]} {metavar}]" for flags, metavar, _ in GLOBAL_OPTIONS)
    rows = [(c.name + (f" ({', '.join(c.aliases)})" if c.aliases else ""), c.help) for c in commands.COMMANDS]
    options = [("-h, --help", "show this help message and exit"),
               *((", ".join(f"{f} {metavar}" for f in flags), text) for flags, metavar, text in GLOBAL_OPTIONS),
               ("--version", "show program's version number and exit")]
    width = min(30, max(len(left) for left, _ in rows + options) + 2)

    def block(items: list[tuple[str, str]]) -> str:
        return "".join(f"  {left:<{width}}{text}\n" if len(left) < width else f"  {left}\n  {'':<{width}}{text}\n"
                       for left, text in items)

    return (f"usage: kosctl [-h] {usage} [--version] COMMAND ...\n\n{DESCRIPTION}\n\ncommands:\n{block(rows)}"
            f"\noptions:\n{block(options)}\n'kosctl COMMAND --help' shows a command's options and examples.\n")


def _modules() -> list[str]:
    return sorted({c.module for c in commands.COMMANDS})


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argparse tree of every command module (or of module ``only``)."""
    import importlib

    from kos.apis.kosctl import examples

    parser, sub = _root()
    for name in [only] if only else _modules():
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    examples.apply(parser)  # --help examples for commands without their own
    return parser


def overview_parser() -> argparse.ArgumentParser:
    """The top-level parser with each command listed (name, aliases, help) but none imported:
    enough for ``kosctl --help`` and for a bare ``kosctl``."""
    parser, sub = _root()
    for c in commands.COMMANDS:
        sub.add_parser(c.name, aliases=list(c.aliases), help=c.help, add_help=False)
    return parser


def command_word(argv: Sequence[str]) -> str | None:
    """The first argument that is not a global option or its value (None: there is none)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--":
            return None
        if word.startswith("-"):
            skip = word in _VALUED
            continue
        return word
    return None


def parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    word = command_word(argv)
    if word is None:
        return overview_parser()
    module = commands.module_of(word)
    return build_parser(module)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in ([], ["-h"], ["--help"]):
        sys.stdout.write(overview_text())
        return 0 if argv else 2
    parser = parser_for(argv)
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
