"""``kosctl cluster`` bad input: every mistake is refused with the flag, the value and what was
expected, before anything is created (no namespaces, no state directory, no context)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kos.platform.provision.network import NETNS_DIR


def _kosctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KOSCONFIG=str(tmp_path / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["--controlplanes", "0"], "--controlplanes 0: expected at least 1"),
    (["--workers", "-1"], "--workers -1: expected 0 or more"),
    (["--cidr", "10.5.0.0/33"], "--cidr '10.5.0.0/33'"),
    (["--cidr", "10.5.0.0/29", "--workers", "5"], "too small for node #6"),
    (["--name", "Bad_Name"], "cluster name 'Bad_Name': expected 1-16 lower-case letters"),
    (["--config-patch", "machine: [unclosed"], "inline patch"),
    (["--config-patch-worker", "machine:\n  type: dictator\n"], "machine.type"),
    (["--wait-timeout", "0"], "--wait-timeout 0"),
])  # fmt: skip
def test_bad_create_flags_are_refused_before_anything_exists(tmp_path: Path, args: list[str], message: str) -> None:
    root = tmp_path / "clusters"
    name = ["--name", "badinput"] if "--name" not in args else []
    proc = _kosctl(tmp_path, "cluster", "create", *name, "--state-root", str(root), *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not root.exists() or not any(root.iterdir())
    assert not list(NETNS_DIR.glob("kos-badinput*")) if NETNS_DIR.exists() else True
    assert not (tmp_path / "kosconfig").exists()


def test_show_and_destroy_of_an_unknown_cluster_name_it(tmp_path: Path) -> None:
    root = str(tmp_path / "clusters")
    for verb in ("show", "destroy"):
        proc = _kosctl(tmp_path, "cluster", verb, "--name", "nosuch", "--state-root", root)
        assert proc.returncode != 0 and "cluster 'nosuch' does not exist" in proc.stderr, proc.stderr
