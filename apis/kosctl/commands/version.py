"""``kosctl version``: the client version (and, once the API is up, the server's)."""

from __future__ import annotations

import argparse

from kos.apis.kosctl.main import VERSION


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("version", help="print the client version")
    p.add_argument("--client", action="store_true", help="print only the client version")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"Client:\n\tkosctl {VERSION}")
    return 0
