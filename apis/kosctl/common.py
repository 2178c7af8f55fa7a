"""What every API-talking kosctl command shares: the ``-e/--endpoints`` and ``-n/--nodes``
options (accepted before or after the command, like talosctl's persistent flags), loading the
kosconfig context, opening a connection, fanning a call out over several nodes, and turning
API failures into one ``error:`` line per node with a non-zero exit.

Heavy imports (grpclib, ssl, cryptography) happen inside the functions, so that merely
building the argument parser (``kosctl --help``) stays fast, and ``kosctl get`` (which talks
through ``kos.apis.client.SyncConnection``) never loads grpclib's client or asyncio.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from kos.apis.kosctl.errors import CLIError

if TYPE_CHECKING:
    from kos.apis.client import ClientConfig, Context
    from kos.apis.client import Connection as Connection

T = TypeVar("T")


def add_target_args(p: argparse.ArgumentParser) -> None:
    """``-e``/``-n`` after the command too (``kosctl get members -n a,b``); SUPPRESS keeps a
    value given before the command when the option is not repeated after it."""
    p.add_argument("-e", "--endpoints", default=argparse.SUPPRESS, help="comma-separated API endpoints (host[:port])")
    p.add_argument(
        "-n", "--nodes", default=argparse.SUPPRESS, help="comma-separated target nodes (proxied through the endpoint)"
    )


def split_list(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def load_config(args: argparse.Namespace, *, missing_ok: bool = True) -> ClientConfig:
    from kos.apis.client import ClientConfig, ConfigError

    try:
        return ClientConfig.load(getattr(args, "kosconfig", None), missing_ok=missing_ok)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None


class Target:
    """Where a command goes: the context (certificates), the endpoint (the first reachable one
    of those given), and the nodes. (A plain class: ``dataclasses`` costs kosctl's start-up
    more than this whole module.)"""

    def __init__(self, context: Context, endpoint: str, nodes: list[str] | None = None, insecure: bool = False) -> None:
        self.context = context
        self.endpoint = endpoint
        self.nodes: list[str] = nodes if nodes is not None else []
        self.insecure = insecure

    def __repr__(self) -> str:
        return f"Target(endpoint={self.endpoint!r}, nodes={self.nodes!r}, insecure={self.insecure!r})"

    def labels(self) -> list[str | None]:
        """Nodes to address: each named node (sent as ``node`` metadata), or the endpoint itself."""
        return list(self.nodes) if self.nodes else [None]

    def label(self, node: str | None) -> str:
        return node or self.endpoint

    def connect(self, timeout: float | None = 30.0) -> Connection:
        from kos.apis.client import Connection as Connection

        try:
            return Connection.from_context(
                self.context, endpoint=self.endpoint, insecure=self.insecure, timeout=timeout
            )
        except ValueError as exc:
            raise CLIError(f"endpoint {self.endpoint!r}: {exc}") from None


def target(args: argparse.Namespace, *, insecure: bool = False) -> Target:
    """The endpoint and nodes from the flags, falling back to the current context's."""
    from kos.apis.client import ConfigError, Context

    endpoints = split_list(getattr(args, "endpoints", None))
    nodes = split_list(getattr(args, "nodes", None))
    cfg = load_config(args)
    ctx: Context
    if insecure:
        ctx = Context()
        if not endpoints:
            endpoints = nodes[:1]
            nodes = []
        if not endpoints:
            try:
                _, ctx = cfg.current(getattr(args, "context", None))
            except ConfigError:
                pass
            endpoints = list(ctx.endpoints)
        if not endpoints:
            raise CLIError("--insecure needs the node's address: -e/--endpoints or -n/--nodes")
        return Target(Context(), endpoints[0], nodes, insecure=True)
    try:
        _, ctx = cfg.current(getattr(args, "context", None))
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    if not ctx.crt or not ctx.key or not ctx.ca:
        raise CLIError("the context has no client certificate (ca/crt/key): kosctl needs mutual TLS")
    endpoints = endpoints or list(ctx.endpoints)
    if not endpoints:
        raise CLIError("no endpoint: use -e/--endpoints or 'kosctl config endpoint ADDR'")
    return Target(ctx, reachable(endpoints), nodes or list(ctx.nodes))


def reachable(endpoints: list[str], timeout: float = 3.0) -> str:
    """The first endpoint that accepts a TCP connection (failover like talosctl's); the first
    one when none does (its error is then reported), without probing when there is one."""
    if len(endpoints) == 1:
        return endpoints[0]
    import socket

    from kos.apis.client import DEFAULT_PORT
    from kos.apis.endpoint import split_endpoint

    for e in endpoints:
        try:
            host, port = split_endpoint(e, DEFAULT_PORT)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return e
        except OSError:
            continue
    return endpoints[0]


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine function; APIError -> CLIError (``node: CODE: message``)."""
    import anyio

    from kos.apis.client import APIError

    try:
        return anyio.run(main)
    except APIError as exc:
        raise CLIError(str(exc)) from None
    except BaseExceptionGroup as group:
        raise _first(group) from None


def _first(exc: BaseException) -> BaseException:
    """The first leaf of an exception group, as a CLIError when it is an API error."""
    from kos.apis.client import APIError

    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return CLIError(str(exc)) if isinstance(exc, APIError) else exc


async def fan_out(
    t: Target, call: Callable[[Connection, str | None], Awaitable[None]], *, timeout: float | None = 30.0,
    conn: Connection | None = None,
) -> int:
    """Run ``call`` once per node (concurrently); a node's failure prints ``error: node: CODE:
    message`` and makes the exit code 1 without stopping the others. Every call goes over one
    connection (one TLS handshake): ``conn`` when the caller already has one open (it stays
    open), else one opened and closed here."""
    import anyio

    from kos.apis.client import APIError

    failed = 0
    own = conn is None
    if conn is None:
        conn = t.connect(timeout)

    async def one(node: str | None) -> None:
        nonlocal failed
        try:
            await call(conn, node)
        except APIError as exc:
            failed += 1
            msg = str(exc) if node is None or exc.node == node else f"{node}: {exc}"
            print(f"error: {msg}", file=sys.stderr, flush=True)

    try:
        if len(t.labels()) == 1:
            await one(t.labels()[0])
        else:
            async with anyio.create_task_group() as tg:
                for node in t.labels():
                    tg.start_soon(one, node)
    finally:
        if own:
            conn.close()
    return 1 if failed else 0


def table(rows: Sequence[Sequence[str]], out: Any = None) -> None:
    """Tab-aligned columns (like Go's tabwriter with padding 3)."""
    out = out or sys.stdout
    if not rows:
        return
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(max(len(r) for r in rows))]
    for r in rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        out.write("   ".join(cells).rstrip() + "\n")
    out.flush()


def parse_duration(text: str, what: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1h30m``, ``7d`` -> seconds (> 0)."""
    import re

    s = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        value = float(s)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", s)
        if not parts or "".join(n + u for n, u in parts) != s:
            raise CLIError(f"{what} {text!r}: expected a duration such as 30s, 15m, 2h or 1h30m")
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
        value = sum(float(n) * scale[u] for n, u in parts)
    if value <= 0:
        raise CLIError(f"{what} {text!r}: must be positive")
    return value
