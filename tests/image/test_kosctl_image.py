"""``kosctl image``: disk, status, upgrade, rollback on an image file, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kos.platform.image import install, meta, rootfs

pytestmark = pytest.mark.skipif(subprocess.run(["which", "mksquashfs"], capture_output=True).returncode != 0,
                                reason="squashfs-tools is not installed")


def kosctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "image", *args], capture_output=True,
                          text=True, timeout=60)


def test_disk_upgrade_rollback_status(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    sq = tmp_path / "r.sqsh"
    rootfs.mksquashfs(tmp_path / "src", sq)
    disk = tmp_path / "disk.raw"
    out = kosctl("disk", "--rootfs", str(sq), "--out", str(disk), "--size", "1024")
    assert out.returncode == 0, out.stderr
    assert "BOOT-B" in out.stdout and "EPHEMERAL" in out.stdout
    assert kosctl("status", str(disk)).stdout == "active: A\nfallback: -\n"
    out = kosctl("upgrade", str(disk), "--rootfs", str(sq))
    assert out.stdout == "active: B\nfallback: A (tries left: 1)\n", out.stderr
    assert install.status(str(disk)) == meta.BootState("B", "A", 1)
    assert kosctl("rollback", str(disk)).stdout == "active: A\nfallback: -\n"


def test_bad_input_names_the_problem(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 4096)
    out = kosctl("disk", "--rootfs", str(junk), "--out", str(tmp_path / "d.raw"), "--size", "1024")
    assert out.returncode == 1 and "not a squashfs rootfs" in out.stderr
    assert not (tmp_path / "d.raw").exists()
    out = kosctl("disk", "--rootfs", str(junk), "--out", str(tmp_path / "d.raw"), "--size", "100")
    assert out.returncode == 1 and "disk size 100 MiB: too small for the kos layout" in out.stderr
    out = kosctl("upgrade", str(junk), "--rootfs", str(junk), "--tries", "0")
    assert out.returncode == 1 and "--tries 0: expected at least 1" in out.stderr
    out = kosctl("status", str(junk))
    assert out.returncode == 1 and "no GPT partition table" in out.stderr
    out = kosctl("status", str(tmp_path / "missing.raw"))
    assert out.returncode == 1 and "No such file or directory" in out.stderr
