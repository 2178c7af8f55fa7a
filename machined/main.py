"""machined entry point: ``machined --state-dir DIR --listen ADDR [--maintenance]`` runs the
node as an ordinary process (see ``kos.machined.node``); PID-1 duties come later."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

VERSION = "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="machined", description="kos machined: the node daemon (PID 1 on a kos node)")
    p.add_argument("--version", action="version", version=f"machined {VERSION}")
    p.add_argument("--state-dir", type=Path, help="directory for the node's configuration, PKI and kosconfig")
    p.add_argument("--listen", default="0.0.0.0:50000", help="API address host:port (port 0: any free port)")
    p.add_argument(
        "--maintenance", action="store_true",
        help="without a configuration, serve the maintenance API (TLS, no client certificate) until one is applied",
    )
    p.add_argument("--node-name", action="append", default=[], help="extra name of this node (for 'node' metadata)")
    p.add_argument(
        "--writable-namespace", action="append", default=[],
        help="namespace whose resources os:admin may write through the State API (repeatable)",
    )
    p.add_argument("--history", type=int, default=1024, help="watch history per resource kind (events)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.state_dir is None:
        print("machined: --state-dir is required to run a node", file=sys.stderr)
        return 2
    if args.history < 8:
        print(f"machined: --history {args.history}: expected at least 8", file=sys.stderr)
        return 2
    import anyio
    import structlog

    from kos.machined.node import NodeOptions, run_node

    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                    structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    opts = NodeOptions(
        state_dir=args.state_dir,
        listen=args.listen,
        maintenance=args.maintenance,
        node_names=args.node_name,
        writable_namespaces=args.writable_namespace,
        history_max=args.history,
    )
    try:
        anyio.run(run_node, opts)
    except ValueError as exc:
        print(f"machined: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"machined: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
