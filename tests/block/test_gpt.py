"""The GPT writer: hypothesis round trip through the probe, and sgdisk/blkid agreeing with
what it writes on a real loop device."""

from __future__ import annotations

import uuid

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.platform.block import device, gpt, partition, probe, sysfs

from .conftest import LoopFactory, MiB, blkid

labels = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20).filter(
    lambda s: len(s.encode("utf-16-le")) <= 72 and "\0" not in s
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[int, list[gpt.GptEntry]]:
    sectors = draw(st.integers(200, 1 << 22))
    size = sectors * 512
    first, last = gpt.usable_lbas(size)
    n = draw(st.integers(0, 6))
    cuts = sorted(draw(st.lists(st.integers(first, last), min_size=2 * n, max_size=2 * n, unique=True)))
    numbers = draw(st.permutations(list(range(1, 129))))[:n]
    entries = [
        gpt.GptEntry(numbers[i], cuts[2 * i], cuts[2 * i + 1], str(uuid.uuid4()), str(uuid.uuid4()), draw(labels))
        for i in range(n)
    ]
    return size, entries


@settings(max_examples=150, deadline=None)
@given(tables())
def test_build_then_probe_round_trip(table: tuple[int, list[gpt.GptEntry]]) -> None:
    size, entries = table
    guid = str(uuid.uuid4())
    writes = gpt.build(size, guid, entries)

    def read(offset: int, length: int) -> bytes:  # a sparse image: the writes over zeros
        out = bytearray(max(0, min(length, size - offset)))
        for at, data in writes.items():
            lo, hi = max(at, offset), min(at + len(data), offset + len(out))
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - at : hi - at]
        return bytes(out)

    result = probe.probe_reader(read, size)
    assert result.table is not None and result.table.type == "gpt" and result.table.uuid == guid
    got = sorted(result.table.partitions, key=lambda p: p.number)
    want = sorted(entries, key=lambda e: e.number)
    assert [(p.number, p.start, p.size, p.type_uuid, p.uuid, p.label) for p in got] == [
        (e.number, e.first_lba * 512, (e.last_lba - e.first_lba + 1) * 512, e.type_uuid, e.uuid, e.label) for e in want
    ]
    # the backup header at the last sector mirrors the primary
    assert read(size - 512, 8) == b"EFI PART"


def test_build_rejects_overlaps_and_out_of_range() -> None:
    size = 64 * MiB
    first, last = gpt.usable_lbas(size)
    a = gpt.GptEntry(1, first, first + 100, partition.LINUX_FS_TYPE, str(uuid.uuid4()), "A")
    b = gpt.GptEntry(2, first + 100, first + 200, partition.LINUX_FS_TYPE, str(uuid.uuid4()), "B")
    with pytest.raises(ValueError, match="overlap"):
        gpt.build(size, str(uuid.uuid4()), [a, b])
    c = gpt.GptEntry(3, last - 1, last + 1, partition.LINUX_FS_TYPE, str(uuid.uuid4()), "C")
    with pytest.raises(ValueError, match="outside the usable"):
        gpt.build(size, str(uuid.uuid4()), [c])


@pytest.mark.root
@pytest.mark.anyio
@pytest.mark.parametrize("sector", [512, 4096])
async def test_sgdisk_and_blkid_accept_what_kos_writes(loops: LoopFactory, sector: int) -> None:
    disk = loops(128 * MiB)
    if sector != 512:
        await anyio.run_process(["losetup", f"--sector-size={sector}", disk])
    ref = device.identify(disk)
    assert sysfs.read_device(ref.name).sector_size == sector  # type: ignore[union-attr]
    await partition.create_table(ref)
    await partition.add_partitions(
        ref,
        [partition.NewPartition(1, MiB, 8 * MiB, "ONE"), partition.NewPartition(2, 9 * MiB, 16 * MiB, "TWO")],
    )
    verify = (await anyio.run_process(["sgdisk", "--verify", disk])).stdout.decode()
    assert "No problems found" in verify, verify
    parts = {p.partition_number: p for p in sysfs.partitions_of(ref.name)}
    assert (parts[1].partition_start, parts[1].size) == (MiB, 8 * MiB)
    assert (parts[2].partition_start, parts[2].size) == (9 * MiB, 16 * MiB)
    assert blkid(f"{disk}p2")["PART_ENTRY_NAME"] == "TWO"
    await partition.grow_partition(ref, 2, 32 * MiB)
    assert sysfs.read_device(f"{ref.name}p2").size == 32 * MiB  # type: ignore[union-attr]
    assert "No problems found" in (await anyio.run_process(["sgdisk", "--verify", disk])).stdout.decode()
