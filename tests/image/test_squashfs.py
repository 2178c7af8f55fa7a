"""Reproducible squashfs (same tree -> same bytes whatever the times, owners and creation
order), layer merging and the rootfs content checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kos.platform.image import rootfs

pytestmark = pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="squashfs-tools is not installed")


def make_tree(root: Path, order: list[str], mtime: int, uid: int) -> None:
    files = {"usr/bin/tool": b"\x7fELF" + b"x" * 5000, "etc/conf": b"a=1\n", "usr/lib/big": b"y" * 300000}
    for name in order:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(files[name])
        os.chmod(p, 0o755 if "bin" in name else 0o644)
    os.symlink("usr/bin", root / "bin")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.lchown(Path(dirpath) / n, uid, uid)
            os.utime(Path(dirpath) / n, (mtime, mtime), follow_symlinks=False)


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, ["usr/bin/tool", "etc/conf", "usr/lib/big"], 1_000_000, 0)
    make_tree(b, ["usr/lib/big", "etc/conf", "usr/bin/tool"], 2_000_000, 1234)
    rootfs.mksquashfs(a, tmp_path / "a.sqsh")
    rootfs.mksquashfs(b, tmp_path / "b.sqsh", processors=1)
    assert (tmp_path / "a.sqsh").read_bytes() == (tmp_path / "b.sqsh").read_bytes()
    (b / "etc/conf").write_bytes(b"a=2\n")
    rootfs.mksquashfs(b, tmp_path / "c.sqsh")
    assert (tmp_path / "a.sqsh").read_bytes() != (tmp_path / "c.sqsh").read_bytes()
    listing = subprocess.run(["unsquashfs", "-lls", str(tmp_path / "a.sqsh")], capture_output=True, text=True,
                             check=True).stdout
    assert "root/root" in listing and "1970-01-01" in listing
    assert "squashfs-root/bin -> usr/bin" in listing


def test_merge_layers_later_wins_and_links(tmp_path: Path) -> None:
    base, top, merged = tmp_path / "base", tmp_path / "top", tmp_path / "merged"
    (base / "usr/bin").mkdir(parents=True)
    (base / "usr/bin/a").write_text("base")
    (base / "usr/bin/b").write_text("base")
    os.symlink("usr/bin", base / "bin")
    (top / "usr/bin").mkdir(parents=True)
    (top / "usr/bin/b").write_text("top")
    rootfs.merge_layers([base, top], merged)
    assert (merged / "usr/bin/a").read_text() == "base"
    assert (merged / "usr/bin/b").read_text() == "top"
    assert os.readlink(merged / "bin") == "usr/bin"
    assert (merged / "usr/bin/a").stat().st_ino == (base / "usr/bin/a").stat().st_ino  # hard link, no copy
    bad = tmp_path / "bad"
    (bad / "bin").mkdir(parents=True)
    (bad / "bin/x").write_text("")
    with pytest.raises(rootfs.BuildError, match="symlink"):
        rootfs.merge_layers([base, bad], tmp_path / "m2")


def test_check_tree_finds_shells_and_missing_files(tmp_path: Path) -> None:
    for rel in rootfs.REQUIRED:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
        os.chmod(p, 0o755)
    assert rootfs.check_tree(tmp_path) == []
    (tmp_path / "usr/bin/busybox").write_text("")
    os.symlink("busybox", tmp_path / "usr/bin/sh")
    (tmp_path / "usr/bin/etcd").unlink()
    os.chmod(tmp_path / "sbin/init", 0o644)
    problems = rootfs.check_tree(tmp_path)
    assert "/usr/bin/sh: a shell must not be in the rootfs" in problems
    assert "/usr/bin/busybox: a shell must not be in the rootfs" in problems
    assert "/usr/bin/etcd: missing" in problems
    assert "/sbin/init: not executable" in problems


def test_module_closure_orders_dependencies(tmp_path: Path) -> None:
    # real modules of the running system are not available here (no modules on the host
    # kernel): an unknown module is an error naming it, a built-in one is skipped
    (tmp_path / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    assert rootfs.module_closure(tmp_path, ["ext4"]) == []
    with pytest.raises(rootfs.BuildError, match="kernel module virtio_blk"):
        rootfs.module_closure(tmp_path, ["virtio_blk"])
