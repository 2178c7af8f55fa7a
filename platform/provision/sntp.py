"""A minimal SNTP server (RFC 4330 server side) for VM clusters: VMs have no route to the
internet, so the QEMU provisioner runs this inside the cluster namespace on the gateway
address and points the nodes' ``machine.time.servers`` at it. It answers client (mode 3)
requests with the host's clock, stratum 2, reference ``LOCL``; anything else is ignored.

``python -m kos.platform.provision.sntp --netns kos-NAME --bind 10.5.0.1 [--port 123]``
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time
from collections.abc import Sequence

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!BBbbII4sQQQQ")


def to_ntp(t: float) -> int:
    secs = int(t) + NTP_EPOCH_OFFSET
    frac = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return (secs << 32) | frac


def from_ntp(v: int) -> float:
    return (v >> 32) - NTP_EPOCH_OFFSET + (v & 0xFFFFFFFF) / (1 << 32)


def answer(request: bytes, received: float, now: float) -> bytes | None:
    """The reply to ``request`` (None when it is not an NTP client request)."""
    if len(request) < PACKET.size:
        return None
    first = request[0]
    version, mode = (first >> 3) & 7, first & 7
    if mode != 3 or not 1 <= version <= 4:
        return None
    client_transmit = PACKET.unpack_from(request)[10]
    return PACKET.pack(
        (0 << 6) | (version << 3) | 4,  # no leap warning, client's version, server mode
        2, 4, -20,  # stratum 2, poll 16 s, precision ~1 us
        0, 1 << 12,  # root delay 0, root dispersion ~62 ms
        b"LOCL", to_ntp(now - 1), client_transmit, to_ntp(received), to_ntp(now),
    )


def serve(sock: socket.socket) -> None:
    while True:
        data, addr = sock.recvfrom(512)
        received = time.time()
        reply = answer(data, received, time.time())
        if reply is not None:
            sock.sendto(reply, addr)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kos-sntp", description="minimal SNTP server for VM clusters")
    p.add_argument("--netns", help="network namespace to serve in (name in /run/netns)")
    p.add_argument("--bind", required=True, help="address to listen on")
    p.add_argument("--port", type=int, default=123)
    args = p.parse_args(argv)
    if args.netns:
        from kos.platform.linux import syscalls as sc

        fd = os.open(f"/run/netns/{args.netns}", os.O_RDONLY)
        try:
            sc.setns(fd, sc.CLONE_NEWNET)
        finally:
            os.close(fd)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((args.bind, args.port))
    except OSError as exc:
        print(f"kos-sntp: cannot listen on {args.bind}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"kos-sntp: serving on {args.bind}:{args.port}", flush=True)
    try:
        serve(sock)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
