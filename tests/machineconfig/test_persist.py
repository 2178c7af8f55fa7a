"""Stored configs and client configs on disk: atomic replace, 0600, no temp leftovers on
failure, strict reload naming the file; kosconfig default path and context lookup."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from kos.resources import machineconfig as mc


def test_save_and_load(tmp_path: Path, generated: mc.Generated) -> None:
    p = tmp_path / "config.yaml"
    mc.save_config(p, generated.controlplane)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert mc.load_config(p) == generated.controlplane
    mc.save_config(p, generated.worker)
    assert mc.load_config(p) == generated.worker
    assert sorted(x.name for x in tmp_path.iterdir()) == ["config.yaml"]


def test_failed_write_keeps_previous(tmp_path: Path, generated: mc.Generated) -> None:
    p = tmp_path / "config.yaml"
    mc.save_config(p, generated.worker)
    before = p.read_bytes()
    bad: Any = "not bytes"
    with pytest.raises(TypeError):
        mc.atomic_write(p, bad)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["config.yaml"]


def test_load_errors_name_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("version: v1alpha1\nmachine: {type: worker, nope: 1}\n")
    with pytest.raises(mc.ConfigErrors, match=r"broken\.yaml: 1 error:\n  - machine\.nope: unknown field"):
        mc.load_config(p)
    with pytest.raises(FileNotFoundError):
        mc.load_config(tmp_path / "absent.yaml")


def test_client_config_file(tmp_path: Path, generated: mc.Generated, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "kosconfig"
    p.write_text(generated.client.to_yaml())
    monkeypatch.setenv("KOSCONFIG", str(p))
    assert mc.ClientConfig.default_path() == p
    cfg = mc.ClientConfig.load_file()
    assert cfg == generated.client
    with pytest.raises(ValueError, match="context 'prod' not found \\(have: demo\\)"):
        cfg.current("prod")
    other = mc.ClientConfig.parse(generated.client.to_yaml())
    cfg.merge(other)
    assert sorted(cfg.contexts) == ["demo", "demo-1"] and cfg.context == "demo-1"
    with pytest.raises(ValueError, match="client config not found"):
        mc.ClientConfig.load_file(tmp_path / "nope")
    with pytest.raises(ValueError, match="context 'x' is not among contexts"):
        mc.ClientConfig.parse("context: x\ncontexts: {}\n")


def test_remove_leftovers_of_interrupted_writes(tmp_path: Path) -> None:
    keep = ["config.yaml", ".hidden", "x.1.tmp", ".config.yaml.tmp", "notes.12.tmp"]
    for name in keep:
        (tmp_path / name).write_text("x")
    for name in (".config.yaml.123.tmp", ".config.staged.yaml.7.tmp"):
        (tmp_path / name).write_text("half")
    (tmp_path / ".dir.5.tmp").mkdir()  # not a file: left alone
    assert mc.remove_leftovers(tmp_path) == [".config.staged.yaml.7.tmp", ".config.yaml.123.tmp"]
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted([*keep, ".dir.5.tmp"])
    assert mc.remove_leftovers(tmp_path / "missing") == []
