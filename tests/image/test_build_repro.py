"""The whole build is reproducible (slow: two builds from scratch): two caches sharing only
the downloaded .debs, one snapshot of the checkout, identical initramfs, rootfs and disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(shutil.which("mksquashfs") is None or os.geteuid() != 0,
                                 reason="needs root and the .ci/setup packages")]


def test_two_builds_from_scratch_are_identical(tmp_path: Path) -> None:
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache", ".pytest_cache")
    shutil.copytree(REPO, src, ignore=lambda d, names: skip(d, names) | ({"build"} if d == str(REPO) else set()))
    debs = REPO / "build" / "kos-image" / "debs"
    digests = []
    for i in (1, 2):
        cache = tmp_path / f"cache{i}"
        (cache / "debs").mkdir(parents=True)
        for deb in debs.glob("*.deb") if debs.is_dir() else []:
            shutil.copy2(deb, cache / "debs" / deb.name)
        proc = subprocess.run([str(src / "rootfs-build" / "build"), "--cache", str(cache), "--disk-size", "1024"],
                              capture_output=True, text=True, timeout=800)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = cache / "out"
        summary = json.loads((out / "build.json").read_text())
        disk = hashlib.sha256((out / "disk.raw").read_bytes()).hexdigest()
        digests.append((summary["sha256"], disk))
    assert digests[0] == digests[1]
