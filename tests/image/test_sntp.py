"""The VM clusters' SNTP server answers kos's own SNTP client (platform.network.sntp)."""

from __future__ import annotations

import socket
import threading

import pytest

from kos.platform.provision import sntp


@pytest.mark.anyio
async def test_kos_sntp_client_syncs_against_it() -> None:
    from kos.platform.network.sntp import query

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    threading.Thread(target=sntp.serve, args=(sock,), daemon=True).start()
    sample = await query(None, "127.0.0.1", port=port, timeout=5)
    assert abs(sample.offset) < 0.5
    assert sample.stratum == 2


def test_only_client_requests_get_answers() -> None:
    req = bytes([(4 << 3) | 3]) + b"\0" * 39 + (12345).to_bytes(8, "big")
    reply = sntp.answer(req, 1000.0, 1000.5)
    assert reply is not None and reply[0] & 7 == 4 and reply[1] == 2
    fields = sntp.PACKET.unpack(reply)
    assert fields[8] == 12345  # originate = the client's transmit time
    assert abs(sntp.from_ntp(fields[10]) - 1000.5) < 1e-6
    assert sntp.answer(bytes([(4 << 3) | 4]) + b"\0" * 47, 0, 0) is None  # a server reply
    assert sntp.answer(b"short", 0, 0) is None
