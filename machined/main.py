"""machined entry point.

``machined --state-dir DIR --listen ADDR [--maintenance] [--platform NAME]`` runs the node
(``kos.machined.node``). As PID 1 it first does the init duties (``kos.machined.init``:
early mounts, ctrl-alt-del to SIGINT), runs the node, and when the node ends (Reboot,
Shutdown, Reset, a signal) syncs, unmounts and calls reboot(2); if anything fails it logs,
waits and reboots rather than exit. As an ordinary process it just returns.

The platform (``--platform`` or ``$KOS_PLATFORM``; PID 1 defaults to ``metal``, a process to
``process``) may supply the machine config (``KOS_CONFIG`` for container nodes, the kernel
command line ``kos.config=`` on metal) and the hostname.

Start-up order (issue 17: serve the API first): a node sure to wait in maintenance mode
listens and answers ``Version`` first (``kos.machined.early``: ~160 modules beyond a bare
interpreter, no structlog, cryptography, betterproto or controller), then a worker thread
configures logging and imports the node (~450 modules more) while the event loop answers;
other calls wait until the node serves them on the same server.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kos.machined.platforms import PLATFORMS, platform_named

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
    p.add_argument("--platform", choices=PLATFORMS, help="where the node runs (default: $KOS_PLATFORM)")
    p.add_argument("--ephemeral-dir", type=Path, help="EPHEMERAL directory wiped by reset (container: /var)")
    p.add_argument("--cgroup-parent", default=os.environ.get("KOS_CGROUP_PARENT", "kos"),
                   help="cgroup under which services run (unique per node on a shared host)")
    p.add_argument("--no-controllers", action="store_true", help="do not run the domain controllers")
    return p


_logging = {"configured": False}


def _configure_logging() -> None:
    """(Once.) JSON lines on stderr (the console), copied into machined's own log ring, which the Logs
    RPC serves as ``machined`` (``kosctl logs machined``).

    structlog's console extras (rich, colorama, better_exceptions: ~70 modules, ~100 ms and
    several MiB per node where a workstation has them installed) are kept out: machined
    writes JSON lines and never pretty-prints."""
    if _logging["configured"]:
        return
    _logging["configured"] = True
    for extra in ("rich", "colorama", "better_exceptions"):
        sys.modules.setdefault(extra, None)  # type: ignore[arg-type]  # "import rich" -> ImportError
    import structlog

    from kos.controllers.system import SHIPPER
    from kos.machined.services import OWN_LOG

    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                    SHIPPER.processor,  # machine.logging destinations (kos.controllers.system)
                    structlog.processors.JSONRenderer(), OWN_LOG],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    pid1 = os.getpid() == 1
    platform = args.platform or os.environ.get("KOS_PLATFORM") or ("metal" if pid1 else "process")
    if platform not in PLATFORMS:
        print(f"machined: platform {platform!r} (KOS_PLATFORM): expected one of {', '.join(PLATFORMS)}",
              file=sys.stderr)
        return 2
    if args.state_dir is None:
        if platform_named(platform).mode.is_process:
            print("machined: --state-dir is required to run a node", file=sys.stderr)
            return 2
        args.state_dir = Path("/system/state")
    if args.history < 8:
        print(f"machined: --history {args.history}: expected at least 8", file=sys.stderr)
        return 2
    if not pid1:
        # logging is configured while the early API answers (_load_node)
        return _run(args, platform, pid1=False)
    # PID 1 too: its early mounts log only when one fails (through a lazy logger: structlog's
    # defaults, still on the console); configuring first cost a TCG VM's boot ~0.5 s of
    # structlog and controller imports before the API port (bench/vm_boot.py: 3.2 -> 2.7 s)
    from kos.machined import init

    return init.never_exit(lambda: _run(args, platform, pid1=True))


def _load_node(plat: Any, platform: str) -> Any:
    """What the node needs beyond the early API: logging, the node's modules (~450: structlog,
    the config model, the generated machine API, the controller runtime ...) and the
    platform's network config (the platform network model). Run in a worker thread while the
    event loop answers the first calls (issue 17); returns the network config or None."""
    import importlib

    _configure_logging()
    importlib.import_module("anyio._backends._asyncio")  # what the node's first anyio call imports
    import kos.machined.node  # noqa: F401

    try:
        return plat.network()
    except ValueError as exc:
        print(f"machined: platform {platform}: {exc}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace, platform: str, *, pid1: bool) -> int:
    import asyncio

    from kos.machined import early
    from kos.machined.platforms import load_platform

    mode = platform_named(platform).mode
    if pid1:
        from kos.machined import init

        init.mount_early()
        if not mode.namespace_node:
            init.ctrl_alt_del_signal()
    plat = load_platform(platform)
    try:
        initial = plat.config()
    except ValueError as exc:
        print(f"machined: platform {platform}: {exc}", file=sys.stderr)
        initial = None
    first = early.serves_maintenance_first(maintenance=args.maintenance, state_dir=args.state_dir,
                                           initial_config=initial)

    async def node_then_power_off() -> object:
        early_api = None
        if first:  # answer Version now; other calls wait until the node serves (kos.machined.early)
            try:
                early_api = await early.listen_maintenance(args.listen, args.node_name, platform)
            except (OSError, ValueError):
                early_api = None  # the node tries again and reports it as before (boot sequence)
        try:
            # the loop thread gets the GIL back sooner while the loader runs (default 5 ms: each
            # step of a TLS handshake would wait that long for it)
            interval = sys.getswitchinterval()
            sys.setswitchinterval(0.0005)
            try:
                network = await asyncio.get_running_loop().run_in_executor(None, _load_node, plat, platform)
            finally:
                sys.setswitchinterval(interval)
        except BaseException:
            if early_api is not None:
                await asyncio.shield(early_api.close(grace=0))
            raise
        from kos.machined.node import NodeOptions, run_node

        ephemeral = args.ephemeral_dir or (Path("/var") if mode.namespace_node else None)
        opts = NodeOptions(
            state_dir=args.state_dir,
            listen=args.listen,
            maintenance=args.maintenance,
            node_names=args.node_name,
            writable_namespaces=args.writable_namespace,
            history_max=args.history,
            platform=platform,
            controllers=not args.no_controllers,
            ephemeral_dir=ephemeral,
            cgroup_parent=args.cgroup_parent,
            initial_config=initial,
            platform_network=network,
            early_api=early_api,
        )
        action = await run_node(opts, pid1=pid1)
        if pid1:
            from kos.machined import init

            # from inside the loop: closing it would wait for executor threads (a DNS lookup
            # can hang for many seconds), and everything that matters has stopped already
            init.power_off(action, unmount=not mode.namespace_node)
        return action

    try:
        # asyncio's runner, as anyio.run's asyncio backend uses: anyio's backend module (~20 ms)
        # is imported by the loader thread, after the early API listens
        asyncio.run(node_then_power_off())
    except ValueError as exc:
        print(f"machined: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"machined: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
