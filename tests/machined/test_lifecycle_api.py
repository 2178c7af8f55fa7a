"""The lifecycle RPCs against a real machined process (process mode, mutual TLS): bad
requests are refused with the field named and change nothing; Upgrade without an installer is
UNIMPLEMENTED (and so is Rollback); Reboot answers, runs the reboot sequence (events) and ends the process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from grpclib.const import Status

from kos.apis.client import APIError, ClientConfig, Connection
from kos.apis.gen.kos import machine as pb

M = "/kos.machine.MachineService/"
pytestmark = pytest.mark.anyio


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    sd = tmp_path / "node"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kos.machined.main", "--state-dir", str(sd), "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (sd / "kosconfig").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"machined did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.05)
        yield sd, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def _conn(sd: Path) -> Connection:
    _, ctx = ClientConfig.load(sd / "kosconfig").current()
    return Connection.from_context(ctx)


async def test_bad_lifecycle_requests_are_refused_and_reboot_runs_the_sequence(
    node: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    sd, proc = node
    async with _conn(sd) as conn:
        bad = pb.ResetRequest(system_partitions_to_wipe=[pb.ResetPartitionSpec(label="DATA", wipe=True)])
        with pytest.raises(APIError) as info:
            await conn.unary(M + "Reset", bytes(bad))
        assert info.value.status == Status.INVALID_ARGUMENT
        assert "system_partitions_to_wipe[0].label: 'DATA'" in info.value.message
        with pytest.raises(APIError) as info:
            await conn.unary(M + "Upgrade", bytes(pb.UpgradeRequest(image=" ")))
        assert info.value.status == Status.INVALID_ARGUMENT and "image" in info.value.message
        with pytest.raises(APIError) as info:
            await conn.unary(M + "Upgrade", bytes(pb.UpgradeRequest(image="ghcr.io/kos-dev/installer:v0.2.0")))
        assert info.value.status == Status.UNIMPLEMENTED and "no boot slots" in info.value.message
        with pytest.raises(APIError) as info:
            await conn.unary(M + "Rollback", bytes(pb.RollbackRequest()))
        assert info.value.status == Status.UNIMPLEMENTED and "process nodes have no boot slots" in info.value.message
        assert proc.poll() is None  # nothing happened to the node

        # the events stream shows the reboot sequence's phases
        events: list[dict[str, str]] = []
        async with conn.stream(M + "Events", bytes(pb.EventsRequest(tail_events=-1))) as replies:
            resp = pb.RebootResponse().parse(await conn.unary(M + "Reboot", bytes(pb.RebootRequest())))
            assert resp.actor_id
            try:
                async for data in replies:
                    ev = pb.MachineEvent().parse(data)
                    if ev.type in ("sequence", "phase"):
                        events.append(yaml.safe_load(ev.payload))
            except APIError:
                pass  # the node stopped its API: the stream ends
    rebooted = [e for e in events if e.get("sequence") == "reboot"]
    assert {"sequence": "reboot", "phase": "stopServices", "action": "start"} in rebooted
    assert proc.wait(20) == 0  # process mode: the node returns (PID 1 would call reboot(2))
