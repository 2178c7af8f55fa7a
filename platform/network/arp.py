"""Gratuitous ARP: announce that ``ip`` is at ``mac`` on a link (a broadcast ARP request for
our own address, RFC 5227 "ARP announcement"), so neighbours update their caches when a
virtual IP moves. ``gratuitous_arp_frame`` is pure; ``send_gratuitous_arp`` is blocking (run
it through ``anyio.to_thread``)."""

from __future__ import annotations

import socket
import struct

from kos.platform.network.netns import socket_in

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def _mac(mac: str) -> bytes:
    return bytes(int(p, 16) for p in mac.split(":"))


def gratuitous_arp_frame(mac: str, ip: str) -> bytes:
    src = _mac(mac)
    addr = socket.inet_aton(ip)
    eth = BROADCAST + src + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + addr + b"\0" * 6 + addr
    return eth + arp


def parse_arp(frame: bytes) -> tuple[int, str, str, str] | None:
    """(op, sender MAC, sender IP, target IP) of an ARP frame, or None."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    sha = ":".join(f"{b:02x}" for b in frame[22:28])
    return op, sha, socket.inet_ntoa(frame[28:32]), socket.inet_ntoa(frame[38:42])


def send_gratuitous_arp(netns: str | None, ifname: str, mac: str, ip: str) -> None:
    s = socket_in(netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        s.bind((ifname, 0))
        s.send(gratuitous_arp_frame(mac, ip))
    finally:
        s.close()
