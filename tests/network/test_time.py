"""SNTP: the wire format and offset arithmetic (pure, hypothesis), and TimeSyncController
against Debian's chronyd serving time in a peer network namespace (measure only: the host
clock is never touched)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.network.timesync import TimeSyncController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.platform.network.sntp import PACKET, SNTPError, decode_reply, encode_request, from_ntp, to_ntp
from kos.resources.core import InMemoryState, Pointer, Resource
from kos.resources.network import NAMESPACE, TIME_STATUSES, TIMESERVER_SPECS, TimeServerSpecSpec
from tests.network.netns import ip, needs_netns, netns, nsenter


def reply(orig: int, recv: float, xmit: float, *, stratum: int = 2, leap: int = 0, mode: int = 4) -> bytes:
    return PACKET.pack((leap << 6) | (4 << 3) | mode, stratum, 0, 0, 0, 0, b"\0" * 4, 0, orig, to_ntp(recv),
                       to_ntp(xmit))


@settings(max_examples=200, deadline=None)
@given(st.floats(1.6e9, 2.0e9), st.floats(-1000, 1000), st.floats(0, 0.5), st.floats(0, 0.01))
def test_offset_and_delay(t1: float, true_offset: float, one_way: float, server_time: float) -> None:
    """A server whose clock is ``true_offset`` ahead, symmetric path: offset and delay come out."""
    transmit = to_ntp(t1)
    t1q = from_ntp(transmit)
    t2 = t1q + one_way + true_offset
    t3 = t2 + server_time
    t4 = t1q + 2 * one_way + server_time
    s = decode_reply(reply(transmit, t2, t3), transmit, t4, "srv")
    assert abs(s.offset - true_offset) < 1e-5
    assert abs(s.delay - 2 * one_way) < 1e-5


def test_bad_replies_are_refused() -> None:
    transmit = to_ntp(1.7e9)
    assert len(encode_request(transmit)) == 48
    with pytest.raises(SNTPError, match="originate"):
        decode_reply(reply(transmit + 1, 1.7e9, 1.7e9), transmit, 1.7e9, "s")
    with pytest.raises(SNTPError, match="not synchronised"):
        decode_reply(reply(transmit, 1.7e9, 1.7e9, leap=3), transmit, 1.7e9, "s")
    with pytest.raises(SNTPError, match="not synchronised"):
        decode_reply(reply(transmit, 1.7e9, 1.7e9, stratum=0), transmit, 1.7e9, "s")
    with pytest.raises(SNTPError, match="mode 3"):
        decode_reply(reply(transmit, 1.7e9, 1.7e9, mode=3), transmit, 1.7e9, "s")
    with pytest.raises(SNTPError, match="too short"):
        decode_reply(b"\x24" * 20, transmit, 1.7e9, "s")


@contextmanager
def chronyd(server_ns: str, workdir: Path) -> Iterator[None]:
    binary = shutil.which("chronyd")
    if binary is None:
        pytest.skip("chronyd is not installed (apt-get install chrony)")
    conf = workdir / "chrony.conf"
    conf.write_text(f"local stratum 8\nallow all\nport 123\ncmdport 0\npidfile {workdir}/chronyd.pid\n"
                    f"driftfile {workdir}/drift\n")
    # -x: never touch the (host's) system clock
    proc = subprocess.Popen(["nsenter", f"--net={server_ns}", binary, "-d", "-x", "-f", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.anyio
@needs_netns
async def test_time_sync_against_chronyd(tmp_path: Path) -> None:
    with netns("ntpc") as node, netns("ntps") as server:
        ip("link", "add", "n0", "netns", node.rsplit("/", 1)[1], "type", "veth", "peer", "name", "t0", "netns",
           server.rsplit("/", 1)[1])
        nsenter(server, "ip", "addr", "add", "10.9.0.1/24", "dev", "t0")
        nsenter(server, "ip", "link", "set", "t0", "up")
        nsenter(node, "ip", "addr", "add", "10.9.0.2/24", "dev", "n0")
        nsenter(node, "ip", "link", "set", "n0", "up")
        with chronyd(server, tmp_path):
            state = InMemoryState()
            runtime = Runtime(state, backoff_initial=0.05, backoff_max=0.5)
            runtime.register(TimeSyncController(node, adjust=False, interval=0.3, timeout=0.5))
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                # the first server does not answer: the next one is used
                spec = Resource.new(TimeServerSpecSpec(time_servers=["10.9.0.99", "10.9.0.1"]), "timeservers",
                                    namespace=NAMESPACE)
                await state.create(spec)
                await assert_resources(
                    state, TIME_STATUSES, ["node"],
                    lambda r: r.spec.synced and r.spec.server == "10.9.0.1" and r.spec.stratum == 8
                    and abs(r.spec.offset) < 0.5 and not r.spec.adjusted and r.spec.steps == 0,
                    timeout=15,
                )
                # only a dead server: the status says why
                cur = await state.get(Pointer(NAMESPACE, TIMESERVER_SPECS.type, "timeservers"))
                cur.spec.time_servers = ["10.9.0.99"]
                await state.update(cur)
                await assert_resources(state, TIME_STATUSES, ["node"],
                                       lambda r: "10.9.0.99: no reply" in r.spec.error, timeout=15)
                tg.cancel_scope.cancel()
