"""The client's one error type, ``APIError(node, status, message)`` (``str()`` is the one-line
form kosctl prints: ``node: STATUS: message``), and the texts both client paths (grpclib's
``Connection`` and the synchronous ``SyncConnection``) give to failures that happen before
or outside a server's answer: a refused or timed-out connection, a TLS failure, a lost
connection, a deadline without an answer. Each says which node, what failed and what to do.
"""

from __future__ import annotations

import errno

from grpclib.const import Status


class APIError(Exception):
    def __init__(self, node: str, status: Status, message: str) -> None:
        super().__init__(f"{node}: {status.name}: {message}")
        self.node = node
        self.status = status
        self.message = message


LOST_MID_CALL = ("the connection to the node was lost in the middle of the call: the node went away "
                 "(stopped, crashed or rebooted) or the network to it failed")

CERT_REQUIRED_HINT = (" (the node closed the connection: it requires a client certificate, so it is not in "
                      "maintenance mode; use a kosconfig context instead of --insecure)")
CERT_REFUSED_HINT = (" (the node closed the connection: is the client certificate valid and issued by "
                     "the node's CA?)")


def os_error_text(exc: OSError) -> str:
    """The reason of a failed connection, never empty: asyncio reports a connection closed in
    the middle of the TLS handshake as a bare ``ConnectionResetError()``."""
    text = exc.strerror or str(exc)
    if text:
        return text
    if isinstance(exc, ConnectionResetError):
        return ("the server closed the connection before the TLS handshake finished (ConnectionResetError): "
                "the node is not serving yet, or a port forwarder in between could not reach it (see its log)")
    return type(exc).__name__


def connect_error(host: str, port: int, exc: OSError, timeout: float | None = None) -> str:
    """What failed when connecting to ``host:port``, and what to check next."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        after = f" within {timeout:.3g} s" if timeout else ""
        return (f"connecting to {where} timed out: no answer{after} (the host is down or unreachable, "
                "or a firewall drops the packets); check the address ('kosctl get members' lists the nodes')")
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return (f"connection to {where} refused: nothing listens there (the node's API is not running, "
                "or the port is wrong: the API port is 50000 unless the endpoint names another)")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return (f"cannot reach {where}: {exc.strerror or os_error_text(exc)} (no route to it, or nothing "
                "answers at that address on its network); check the address")
    return f"connection failed: {os_error_text(exc)}"


def deadline_text(timeout: float | None, node: str | None, endpoint: str) -> str:
    """A DEADLINE_EXCEEDED without the server's reason: what the client waited for."""
    waited = f"no answer within {timeout:.3g} s" if timeout else "no answer before the deadline"
    if node:
        return (f"{waited}: the endpoint {endpoint} forwards the call to node {node}; is that node up "
                "and its address right (kosctl get members)? A node that does not answer at all "
                "(down, or the address is not in use) looks like this")
    return f"{waited} from {endpoint}: the node is overloaded or stuck; try again, or look at 'kosctl logs machined'"
