"""Manual rollback: which slot is a previous good one (META's good-a/good-b marks, an
unconfirmed upgrade's fallback), and the Rollback RPC handler with machined's node on a real
disk image (the node's system disk pointed at the image file): refused with
FAILED_PRECONDITION and nothing changed when there is no previous good slot; otherwise it
answers with both slots, flips META and runs the reboot sequence."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call
from kos.machined.api import LifecycleService
from kos.machined.init import Action
from kos.machined.node import MachineNode, NodeOptions
from kos.platform.image import boot, install, installer, layout, meta
from tests.image.test_install import MiB, squash


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    img = tmp_path / "disk.raw"
    layout.write_image(img, squash(tmp_path, "v1", "kos v1\n"), 1024 * MiB)
    return img


def test_rollback_needs_a_previous_good_slot(tmp_path: Path, disk: Path) -> None:
    d = str(disk)
    loc = install.locate(d)
    with pytest.raises(install.NoPreviousSlotError, match="no previous good slot to roll back to: BOOT-B never ran"):
        install.rollback(d)  # fresh install: BOOT-B is empty
    assert install.status(d) == meta.BootState("A")

    # an unconfirmed upgrade: its fallback is the previous good slot
    install.upgrade(d, squash(tmp_path, "v2", "kos v2\n"))
    assert install.rollback_target(d) == (meta.BootState("B", "A", 1), "A")

    # the initramfs rolls back from a slot that never confirmed: B is not a good slot
    _, rolled = meta.next_boot(meta.next_boot(install.status(d))[1])
    meta.write(d, rolled.to_meta(meta.read(d, loc.meta_offset)), loc.meta_offset)
    assert install.status(d) == meta.BootState("A")
    with pytest.raises(install.NoPreviousSlotError, match="BOOT-B never ran a confirmed system"):
        install.rollback(d)

    # an upgrade that the boot confirmer confirms: both slots are good, rollback goes both ways
    install.upgrade(d, squash(tmp_path, "v3", "kos v3\n"))
    assert boot.confirm_boot(d, loc.meta_offset)
    assert meta.read(d, loc.meta_offset)["good-b"] == "1"
    assert install.rollback(d) == meta.BootState("A")
    assert install.rollback(d) == meta.BootState("B")

    # a slot whose content was overwritten by something that is no squashfs is refused
    with open(d, "r+b") as f:
        f.seek(loc.slots["A"][0])
        f.write(b"\0" * 4096)
    with pytest.raises(install.NoPreviousSlotError, match="BOOT-A holds no squashfs rootfs"):
        install.rollback(d)


class _Stream:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def recv_message(self) -> Any:
        return SimpleNamespace(data=b"")

    async def send_message(self, msg: Any) -> None:
        self.sent.append(msg.data)


@pytest.mark.anyio
async def test_rollback_rpc_on_a_disk_image(tmp_path: Path, disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(installer, "system_disk", lambda: str(disk))
    node = MachineNode(NodeOptions(state_dir=tmp_path / "state", platform="qemu"))
    svc = LifecycleService(node)

    async def call() -> pb.RollbackResponse:
        stream = _Stream()
        await svc.rollback(Call(stream, "/kos.machine.MachineService/Rollback", frozenset({"os:admin"})))  # type: ignore[arg-type]
        return pb.RollbackResponse().parse(stream.sent[0])

    with anyio.fail_after(60):  # the task group ends when the rollback sequence has run
        async with anyio.create_task_group() as tg:
            node._tg = tg
            await _scenario(call, node, disk, tmp_path)
    assert node.action is Action.REBOOT
    assert install.status(str(disk)) == meta.BootState("A")


async def _scenario(call: Any, node: MachineNode, disk: Path, tmp_path: Path) -> None:
    with pytest.raises(GRPCError) as info:
        await call()
    assert info.value.status == Status.FAILED_PRECONDITION
    assert "rollback refused" in str(info.value.message) and "no previous good slot" in str(info.value.message)
    assert install.status(str(disk)) == meta.BootState("A")
    assert node.action is None

    install.upgrade(str(disk), squash(tmp_path, "v2", "kos v2\n"))
    resp = await call()
    assert (resp.from_slot, resp.to_slot) == ("B", "A") and resp.actor_id


@pytest.mark.anyio
async def test_rollback_on_a_process_node_is_unimplemented(tmp_path: Path) -> None:
    svc = LifecycleService(MachineNode(NodeOptions(state_dir=tmp_path / "state", platform="container")))
    with pytest.raises(GRPCError) as info:
        await svc.rollback(Call(_Stream(), "/kos.machine.MachineService/Rollback", frozenset()))  # type: ignore[arg-type]
    assert info.value.status == Status.UNIMPLEMENTED and "container nodes have no boot slots" in str(info.value.message)
