"""SNTP (RFC 4330) client: one request/response exchange with an NTP server over UDP.

``query`` sends a mode-3 (client) NTPv4 packet from a socket opened in the given network
namespace and returns the clock offset and round-trip delay computed from the four
timestamps (t1 client send, t2 server receive, t3 server send, t4 client receive):
``offset = ((t2 - t1) + (t3 - t4)) / 2``, ``delay = (t4 - t1) - (t3 - t2)``. Replies that do
not answer our request, come from an unsynchronised server (leap indicator 3 or stratum 0,
"kiss-o'-death") or are malformed raise ``SNTPError``. ``encode_request``/``decode_reply`` are
pure. ``step_clock`` sets CLOCK_REALTIME (root only; never used in container mode).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import anyio

from kos.platform.network.netns import socket_in

NTP_EPOCH_OFFSET = 2208988800  # 1900-01-01 -> 1970-01-01
PACKET = struct.Struct("!BBbbII4sQQQQ")


class SNTPError(Exception):
    pass


def to_ntp(t: float) -> int:
    secs = int(t) + NTP_EPOCH_OFFSET
    frac = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return (secs << 32) | frac


def from_ntp(v: int) -> float:
    return (v >> 32) - NTP_EPOCH_OFFSET + (v & 0xFFFFFFFF) / (1 << 32)


def encode_request(transmit: int) -> bytes:
    return PACKET.pack((0 << 6) | (4 << 3) | 3, 0, 0, 0, 0, 0, b"\0" * 4, 0, 0, 0, transmit)


@dataclass(frozen=True)
class Sample:
    server: str
    offset: float
    delay: float
    stratum: int


def decode_reply(data: bytes, transmit: int, t4: float, server: str) -> Sample:
    if len(data) < PACKET.size:
        raise SNTPError(f"{server}: reply too short ({len(data)} bytes)")
    (flags, stratum, _poll, _prec, _rd, _rdisp, _ref, _reft, orig, recv, xmit) = PACKET.unpack(data[:PACKET.size])
    leap, mode = flags >> 6, flags & 7
    if mode != 4:
        raise SNTPError(f"{server}: reply mode {mode}, expected 4 (server)")
    if orig != transmit:
        raise SNTPError(f"{server}: reply does not answer our request (originate timestamp mismatch)")
    if leap == 3 or stratum == 0 or stratum > 15:
        raise SNTPError(f"{server}: server is not synchronised (leap {leap}, stratum {stratum})")
    t1, t2, t3 = from_ntp(transmit), from_ntp(recv), from_ntp(xmit)
    return Sample(server=server, offset=((t2 - t1) + (t3 - t4)) / 2, delay=(t4 - t1) - (t3 - t2), stratum=stratum)


async def query(netns: str | None, server: str, *, port: int = 123, timeout: float = 2.0) -> Sample:
    try:
        infos = await anyio.getaddrinfo(server, port, type=socket.SOCK_DGRAM)
    except OSError as e:
        raise SNTPError(f"{server}: does not resolve ({e})") from None
    if not infos:
        raise SNTPError(f"{server}: does not resolve")
    family, _, _, _, addr = infos[0]
    sock = await anyio.to_thread.run_sync(lambda: socket_in(netns, family, socket.SOCK_DGRAM))
    try:
        sock.setblocking(False)
        transmit = to_ntp(time.time())
        sock.sendto(encode_request(transmit), addr[:2])
        with anyio.move_on_after(timeout):
            while True:
                await anyio.wait_readable(sock)
                try:
                    data, peer = sock.recvfrom(1024)
                except BlockingIOError:
                    continue
                t4 = time.time()
                if peer[0] != addr[0]:
                    continue
                return decode_reply(data, transmit, t4, server)
        raise SNTPError(f"{server}: no reply within {timeout:g}s")
    except OSError as e:
        raise SNTPError(f"{server}: {e}") from None
    finally:
        sock.close()


def step_clock(offset: float) -> None:
    """Move CLOCK_REALTIME by ``offset`` seconds (blocking; root)."""
    time.clock_settime(time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME) + offset)
