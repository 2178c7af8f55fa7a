"""The disk layout, the disk image writer and install/upgrade/rollback on a loop device: the
GPT is checked with sgdisk, each slot is mounted as squashfs through an offset loop device."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos.platform.image import install, layout, meta, rootfs

MiB = layout.MiB
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mksquashfs") is None or shutil.which("sgdisk") is None,
                       reason="needs root, squashfs-tools and gdisk"),
]


def squash(tmp_path: Path, name: str, content: str) -> Path:
    src = tmp_path / f"src-{name}"
    (src / "etc").mkdir(parents=True)
    (src / "etc/release").write_text(content)
    (src / "pad").write_bytes(os.urandom(64 * 1024))
    out = tmp_path / f"{name}.sqsh"
    rootfs.mksquashfs(src, out)
    return out


@contextlib.contextmanager
def loop(path: Path, offset: int = 0, size: int = 0, readonly: bool = False) -> Iterator[str]:
    args = ["losetup", "-f", "--show", "-o", str(offset)] + (["--sizelimit", str(size)] if size else []) \
        + (["-r"] if readonly else []) + [str(path)]
    dev = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def read_slot(disk: str, slot: str) -> str:
    loc = install.locate(disk)
    offset, size = loc.slots[slot]
    mnt = Path(f"/tmp/kos-test-slot-{os.getpid()}")
    mnt.mkdir(exist_ok=True)
    with loop(Path(disk), offset, size, readonly=True) as dev:
        subprocess.run(["mount", "-t", "squashfs", "-o", "ro", dev, str(mnt)], check=True)
        try:
            return (mnt / "etc/release").read_text()
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
            mnt.rmdir()


def test_plan_is_aligned_and_ordered() -> None:
    parts = layout.plan(2048 * MiB)
    assert [p.label for p in parts] == ["EFI", "BOOT-A", "BOOT-B", "META", "STATE", "EPHEMERAL"]
    assert all(p.start % MiB == 0 and p.size % MiB == 0 for p in parts)
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    with pytest.raises(ValueError, match=r"disk size 512 MiB: too small for the kos layout, expected at least \d+ MiB"):
        layout.plan(512 * MiB)


def test_image_install_upgrade_rollback_on_a_loop_device(tmp_path: Path) -> None:
    v1, v2 = squash(tmp_path, "v1", "kos v1\n"), squash(tmp_path, "v2", "kos v2\n")
    img = tmp_path / "disk.raw"
    layout.write_image(img, v1, 1024 * MiB)
    assert img.stat().st_blocks * 512 < 16 * MiB  # sparse
    verify = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True)
    assert "No problems found" in verify.stdout, verify.stdout
    printed = subprocess.run(["sgdisk", "-p", str(img)], capture_output=True, text=True, check=True).stdout
    for label in ("EFI", "BOOT-A", "BOOT-B", "META", "STATE", "EPHEMERAL"):
        assert label in printed
    with loop(img) as disk:
        assert install.status(disk) == meta.BootState("A")
        assert read_slot(disk, "A") == "kos v1\n"

        staged = install.upgrade(disk, v2, tries=2)
        assert staged == meta.BootState("B", "A", 2)
        assert read_slot(disk, "B") == "kos v2\n"
        assert read_slot(disk, "A") == "kos v1\n"  # the fallback is untouched
        loc = install.locate(disk)
        values = meta.read(disk, loc.meta_offset)
        assert len(values["sha256-b"]) == 64

        # a second upgrade before confirming goes to the other slot of the *active* one
        install.upgrade(disk, v1)
        assert install.status(disk) == meta.BootState("A", "B", meta.DEFAULT_TRIES)
        assert install.rollback(disk) == meta.BootState("B")
        assert install.status(disk) == meta.BootState("B")


def test_bad_images_leave_the_disk_alone(tmp_path: Path) -> None:
    v1 = squash(tmp_path, "v1", "kos v1\n")
    img = tmp_path / "disk.raw"
    layout.write_image(img, v1, 1024 * MiB)
    loc = install.locate(str(img))

    def regions() -> bytes:
        with open(img, "rb") as f:
            out = b""
            for off in (0, loc.meta_offset, loc.slots["A"][0], loc.slots["B"][0]):
                f.seek(off)
                out += f.read(MiB)
            return out

    before = regions()
    notsquash = tmp_path / "junk.img"
    notsquash.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(install.InstallError, match=r"junk.img: not a squashfs rootfs"):
        install.upgrade(str(img), notsquash)
    big = tmp_path / "big.sqsh"
    big.write_bytes(b"hsqs" + b"\0" * 10)
    os.truncate(big, 300 * MiB)
    with pytest.raises(install.InstallError, match=r"big.sqsh: 314572800 bytes, the boot slot holds 268435456"):
        install.upgrade(str(img), big)
    with pytest.raises(install.InstallError, match="tries 0"):
        install.upgrade(str(img), v1, tries=0)
    assert regions() == before
    blank = tmp_path / "blank.raw"
    blank.write_bytes(b"\0" * MiB)
    with pytest.raises(install.InstallError, match="no GPT partition table"):
        install.upgrade(str(blank), v1)


@pytest.mark.skipif(shutil.which("mkfs.xfs") is None, reason="xfsprogs is not installed")
def test_installed_image_has_xfs_state_and_ephemeral(tmp_path: Path) -> None:
    from kos.platform.block.probe import probe_path

    v1 = squash(tmp_path, "v1", "kos v1\n")
    img = tmp_path / "disk.raw"
    parts = layout.write_image(img, v1, 1024 * MiB, format_volumes=True)
    assert img.stat().st_blocks * 512 < 64 * MiB  # still sparse
    assert not list(tmp_path.glob(".disk.raw.*"))  # scratch files gone
    for label in ("STATE", "EPHEMERAL"):
        p = layout.find(parts, label)
        with loop(img, p.start, p.size) as dev:
            fs = probe_path(dev).filesystem
            assert fs is not None and (fs.type, fs.label) == ("xfs", label)
            mnt = tmp_path / f"mnt-{label}"
            mnt.mkdir()
            subprocess.run(["mount", "-t", "xfs", dev, str(mnt)], check=True)
            try:
                (mnt / "probe").write_text("ok")
            finally:
                subprocess.run(["umount", str(mnt)], check=True)
    assert install.status(str(img)) == meta.BootState("A")
