"""Parsing of API endpoint addresses (``host``, ``host:port``, ``[v6]:port``, bare IPv6); kept
free of heavy imports because kosctl needs it on every start."""

from __future__ import annotations


def split_endpoint(endpoint: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif endpoint.count(":") == 1:
        host, port = endpoint.split(":")
    else:
        host, port = endpoint, ""
    if not host:
        raise ValueError(f"endpoint {endpoint!r}: missing host")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"endpoint {endpoint!r}: port must be a number in 0..65535")
    return host, int(port)
