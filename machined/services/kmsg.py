"""The kernel log: /dev/kmsg records into a bounded LogRing (what the Dmesg RPC serves).

Each read of /dev/kmsg returns one record ``prio,seq,usec,flags[,...];message`` (continuation
lines start with a space and carry KEY=value metadata, which is dropped). ``parse_record``
decodes one; ``pump_kmsg(ring)`` appends ``[   12.345678] message`` lines to the ring, starting
with every record the kernel still holds, until cancelled. A reader that falls behind the
kernel's buffer gets EPIPE once; it continues with the oldest record still available.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass

import anyio

from kos.machined.services.logring import LogRing

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news")
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


@dataclass(frozen=True)
class KmsgRecord:
    facility: int
    level: int
    seq: int
    usec: int
    message: str

    def line(self) -> str:
        return f"[{self.usec // 1_000_000:5d}.{self.usec % 1_000_000:06d}] {self.message}"


def parse_record(raw: bytes) -> KmsgRecord:
    """One /dev/kmsg record; ValueError naming what is malformed."""
    text = raw.decode("utf-8", errors="replace")
    head, sep, rest = text.partition(";")
    if not sep:
        raise ValueError(f"kmsg record {text[:60]!r}: expected 'prio,seq,usec,flags;message'")
    fields = head.split(",")
    if len(fields) < 3 or not all(f.isdigit() for f in fields[:3]):
        raise ValueError(f"kmsg record header {head!r}: expected decimal prio,seq,usec")
    prio, seq, usec = (int(f) for f in fields[:3])
    message = rest.split("\n", 1)[0]
    return KmsgRecord(prio >> 3, prio & 7, seq, usec, message)


async def pump_kmsg(ring: LogRing, path: str = "/dev/kmsg") -> None:
    """Copy kernel log records into ``ring`` until cancelled."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overrun: records were lost, go on with the oldest left
                    ring.write(b"[kmsg] some kernel log records were lost (reader too slow)\n")
                    continue
                raise
            if not raw:
                return
            try:
                rec = parse_record(raw)
            except ValueError:
                continue
            ring.write(rec.line().encode() + b"\n")
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
