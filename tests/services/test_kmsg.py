"""The kernel log pump: real /dev/kmsg records (we write one as root) end up in the ring."""

from __future__ import annotations

import os
import uuid

import anyio
import pytest

from kos.machined.services import LogRing
from kos.machined.services.kmsg import parse_record, pump_kmsg


def test_parse_record() -> None:
    rec = parse_record(b"6,1234,5678901,-,caller=T1;eth0: link up\n SUBSYSTEM=net\n")
    assert (rec.facility, rec.level, rec.seq, rec.usec, rec.message) == (0, 6, 1234, 5678901, "eth0: link up")
    assert rec.line() == "[    5.678901] eth0: link up"
    assert parse_record(b"14,1,2,-;from user").facility == 1
    with pytest.raises(ValueError, match="expected 'prio,seq,usec,flags;message'"):
        parse_record(b"garbage")
    with pytest.raises(ValueError, match="expected decimal prio,seq,usec"):
        parse_record(b"a,b,c;x")


def _write_kmsg(text: str) -> None:
    fd = os.open("/dev/kmsg", os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@pytest.mark.anyio
@pytest.mark.root
async def test_pump_reads_the_kernel_log() -> None:
    if not os.access("/dev/kmsg", os.R_OK | os.W_OK):
        pytest.skip("/dev/kmsg not readable and writable")
    ring = LogRing(1 << 20)
    marker = f"kos-kmsg-test-{uuid.uuid4().hex}"
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_kmsg, ring)
        await anyio.to_thread.run_sync(_write_kmsg, f"<6>{marker}\n")
        with anyio.fail_after(5):
            async for chunk in ring.follow():
                if marker.encode() in chunk:
                    break
        tg.cancel_scope.cancel()
    line = next(x for x in ring.tail(10_000) if marker.encode() in x)
    assert line.startswith(b"[") and line.endswith(marker.encode())
