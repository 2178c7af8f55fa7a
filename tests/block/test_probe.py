"""The Python superblock probe and the sysfs reader against the real kernel and blkid."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.platform.block import probe, sysfs

from .conftest import LoopFactory, MiB, blkid

XFS_SMALL = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def sh(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, env=env)


@pytest.mark.root
def test_gpt_and_filesystems_match_blkid(loops: LoopFactory) -> None:
    disk = loops(256 * MiB)
    sh(
        "sgdisk",
        "-n", "1:2048:+64M", "-c", "1:XFSPART",
        "-n", "2:0:+64M", "-c", "2:EXTPART",
        "-n", "3:0:+16M", "-c", "3:SWAP",
        "-n", "4:0:+16M", "-c", "4:ESP", "-t", "4:ef00",
        disk,
    )  # fmt: skip
    sh("partx", "--add", disk)
    parts = {p.partition_number: p.dev_path for p in sysfs.partitions_of(disk.removeprefix("/dev/"))}
    assert sorted(parts) == [1, 2, 3, 4]
    sh("mkfs.xfs", "-f", "-L", "data", parts[1], env=XFS_SMALL)
    sh("mkfs.ext4", "-q", "-F", "-L", "extlabel", parts[2])
    sh("mkswap", "-L", "swaplabel", parts[3])
    sh("mkfs.vfat", "-n", "EFI", parts[4])

    result = probe.probe_path(disk)
    want = blkid(disk)
    assert result.table is not None and result.filesystem is None
    assert (result.table.type, result.table.uuid) == (want["PTTYPE"], want["PTUUID"])
    assert [p.label for p in result.table.partitions] == ["XFSPART", "EXTPART", "SWAP", "ESP"]
    for entry in result.table.partitions:
        part = blkid(parts[entry.number])
        assert entry.uuid == part["PART_ENTRY_UUID"]
        assert entry.type_uuid == part["PART_ENTRY_TYPE"]
        assert entry.start == int(part["PART_ENTRY_OFFSET"]) * 512
        assert entry.size == int(part["PART_ENTRY_SIZE"]) * 512
        fs = probe.probe_path(parts[entry.number]).filesystem
        assert fs is not None
        assert (fs.type, fs.uuid, fs.label) == (part["TYPE"], part["UUID"], part.get("LABEL", ""))
        assert fs.block_size > 0


@pytest.mark.root
def test_mbr_and_whole_disk_filesystem(loops: LoopFactory) -> None:
    mbr = loops(64 * MiB)
    sh("parted", "-s", mbr, "mklabel", "msdos", "mkpart", "primary", "ext4", "1MiB", "20MiB")
    result = probe.probe_path(mbr)
    want = blkid(mbr)
    assert result.table is not None and result.table.type == "dos" == want["PTTYPE"]
    assert result.table.uuid == want["PTUUID"]
    (entry,) = result.table.partitions
    assert (entry.start, entry.size, entry.type_uuid) == (MiB, 19 * MiB, "0x83")

    whole = loops(64 * MiB)
    sh("mkfs.ext4", "-q", "-F", "-L", "whole", whole)
    result = probe.probe_path(whole)
    assert result.table is None and result.filesystem is not None
    assert (result.filesystem.type, result.filesystem.label) == ("ext4", "whole")
    assert result.filesystem.size == 64 * MiB

    empty = loops(8 * MiB)
    assert probe.probe_path(empty).empty


@pytest.mark.root
def test_sysfs_describes_loop_devices(loops: LoopFactory) -> None:
    disk = loops(32 * MiB)
    d = sysfs.read_device(disk.removeprefix("/dev/"))
    assert d is not None
    assert (d.size, d.is_partition, d.major, d.dev_path) == (32 * MiB, False, 7, disk)
    assert d.backing_file.endswith(".img")
    assert d.diskseq > 0
    assert d.name in {x.name for x in sysfs.scan()}


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=0, max_size=4096),
    st.sampled_from([0, 512, 1024, 32768, 65536]),
    st.sampled_from([b"EFI PART", b"XFSB", b"\x53\xef", b"hsqs", b"SWAPSPACE2", b"CD001", b"\x55\xaa", b"FAT32"]),
)
def test_probe_never_crashes_on_garbage(noise: bytes, at: int, magic: bytes) -> None:
    """Discovery must survive any bytes on a disk: random data with magics in the usual places."""
    size = 256 * 1024
    image = bytearray(size)
    image[: len(noise)] = noise
    image[512 : 512 + len(noise)] = noise
    for off in (at, at + 56, 510, 512, 1024 + 0x38, 4086):
        image[off : off + len(magic)] = magic
    result = probe.probe_reader(lambda o, n: bytes(image[o : o + n]), size)
    assert isinstance(result, probe.ProbeResult)
    assert isinstance(result.name, str)
