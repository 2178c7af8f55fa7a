"""LogRing: fixed capacity, wrap-around, tail and follow (including a follower overrun)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from kos.machined.services import LogRing, LogStore, RingLogProcessor


def test_wraps_without_growing() -> None:
    ring = LogRing(16)
    buf_id = id(ring._buf)
    for i in range(10):
        ring.write(f"line{i}\n".encode())
    assert ring.written == 60
    assert len(ring) == 16
    assert len(ring._buf) == 16 and id(ring._buf) == buf_id
    assert ring.read(0)[0] == b"ne7\nline8\nline9\n"
    assert ring.contents() == b"line8\nline9\n"
    assert ring.tail(1) == [b"line9"]
    assert ring.tail(5) == [b"line8", b"line9"]


def test_oversized_write_keeps_the_end() -> None:
    ring = LogRing(8)
    ring.write(b"0123456789abcdef")
    assert ring.read(0) == (b"89abcdef", 16)
    assert ring.oldest == 8


def test_rejects_bad_capacity() -> None:
    with pytest.raises(ValueError, match="capacity must be positive"):
        LogRing(0)


def test_tail_keeps_partial_last_line() -> None:
    ring = LogRing(64)
    ring.write(b"a\nb\nc")
    assert ring.tail(2) == [b"b", b"c"]
    assert ring.tail(0) == []


@pytest.mark.anyio
async def test_follow_tail_then_new_data() -> None:
    ring = LogRing(1024)
    ring.write(b"one\ntwo\nthree\n")
    got: list[bytes] = []

    async def reader() -> None:
        async for chunk in ring.follow(tail_lines=2):
            got.append(chunk)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.lowlevel.checkpoint()
        ring.write(b"four\n")
        ring.write(b"five\n")
        ring.close()
    assert b"".join(got) == b"two\nthree\nfour\nfive\n"


@pytest.mark.anyio
async def test_follower_that_falls_behind_resumes_at_oldest() -> None:
    ring = LogRing(10)
    agen = ring.follow()
    ring.write(b"abc")
    assert await agen.__anext__() == b"abc"
    ring.write(b"0123456789XYZ")  # overwrites more than a ring's worth
    assert await agen.__anext__() == b"3456789XYZ"
    ring.close()
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()


def test_store_and_structlog_processor() -> None:
    store = LogStore(128)
    ring = store.ring("machined")
    assert store.ring("machined") is ring and "machined" in store and store.names() == ["machined"]
    proc = RingLogProcessor(ring)
    assert proc(None, "info", "rendered line") == "rendered line"
    proc(None, "info", {"event": "hello", "service": "etcd"})
    assert ring.tail(2) == [b"rendered line", b"event=hello service=etcd"]
