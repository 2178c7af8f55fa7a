"""The Python superblock probe and the sysfs reader against the real kernel and blkid."""

from __future__ import annotations

import subprocess

import pytest

from kos.platform.block import probe, sysfs

from .conftest import LoopFactory, MiB, blkid

pytestmark = pytest.mark.root

XFS_SMALL = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def sh(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, env=env)


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


def test_sysfs_describes_loop_devices(loops: LoopFactory) -> None:
    disk = loops(32 * MiB)
    d = sysfs.read_device(disk.removeprefix("/dev/"))
    assert d is not None
    assert (d.size, d.is_partition, d.major, d.dev_path) == (32 * MiB, False, 7, disk)
    assert d.backing_file.endswith(".img")
    assert d.diskseq > 0
    assert d.name in {x.name for x in sysfs.scan()}
