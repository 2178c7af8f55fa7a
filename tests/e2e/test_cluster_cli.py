"""``kosctl cluster`` bad input: every mistake is refused with the flag, the value and what was
expected, before anything is created (no namespaces, no state directory, no context)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kos.platform.provision.namespaces import ClusterState, NodeState
from kos.platform.provision.network import NETNS_DIR, ClusterNetwork
from kos.platform.provision.qemu import QEMU, QemuProvisioner, VMSpec, vm_pid


def _kosctl(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # no Kubernetes here (tests/e2e/test_kubernetes.py runs it): the kubelet waits for its binary
    env = dict(os.environ, KOSCONFIG=str(tmp_path / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path),
               KOS_K8S_DIR=str(tmp_path / "no-kubernetes"),
               **(env or {}))
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["--controlplanes", "0"], "--controlplanes 0: expected at least 1"),
    (["--workers", "-1"], "--workers -1: expected 0 or more"),
    (["--cidr", "10.5.0.0/33"], "--cidr '10.5.0.0/33'"),
    (["--cidr", "10.5.0.0/29", "--workers", "5"], "too small for node #6"),
    (["--cidr", "10.98.0.0/24"], "--cidr 10.98.0.0/24: overlaps cluster.network.serviceSubnets 10.96.0.0/12"),
    (["--cidr", "10.244.7.0/24"], "--cidr 10.244.7.0/24: overlaps cluster.network.podSubnets 10.244.0.0/16"),
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


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which(QEMU) is None, reason="needs root and QEMU")
def test_show_and_destroy_find_a_qemu_cluster_without_provisioner_flag(tmp_path: Path) -> None:
    """A cluster made by the QEMU provisioner (under ~/.kos/qemu-clusters) is found by name:
    ``show`` says so and ``destroy`` stops its VM. The VM here is a real QEMU process without a
    guest (``-machine none -S``): what destroy has to find is the process, not a booted kos."""
    name = "q" + uuid.uuid4().hex[:6]
    home = tmp_path / "home"
    prov = QemuProvisioner(VMSpec(tmp_path), home / ".kos" / "qemu-clusters")
    cdir = prov.cluster_dir(name)
    (cdir / "n1").mkdir(parents=True)
    net = ClusterNetwork(name, "10.94.0.0/24")
    net.create()
    qemu = None
    try:
        (cdir / "vm.json").write_text("{}")
        node = NodeState("n1", "controlplane", "10.94.0.2/24", net.netns, str(cdir / "n1"))
        qemu = subprocess.Popen(["nsenter", f"--net=/run/netns/{net.netns}", QEMU, "-machine", "none", "-nodefaults",
                                 "-display", "none", "-S", "-name", f"kos-{name}-n1"], start_new_session=True)
        node.pid = qemu.pid
        (cdir / "n1" / "qemu.json").write_text(json.dumps({"tap": "tap0", "config": ""}))
        ClusterState(name, "10.94.0.0/24", str(cdir), "10.94.0.1", [node]).save()
        deadline = time.monotonic() + 10
        while vm_pid(node) is None and time.monotonic() < deadline:
            time.sleep(0.05)

        env = {"HOME": str(home)}
        show = _kosctl(tmp_path, "cluster", "show", "--name", name, env=env)
        assert show.returncode == 0, show.stderr
        assert f"cluster {name} (qemu)" in show.stdout and str(qemu.pid) in show.stdout
        nosuch = _kosctl(tmp_path, "cluster", "destroy", "--name", "nosuch", env=env)
        assert nosuch.returncode != 0
        assert f"cluster 'nosuch' does not exist (known: {name} (qemu))" in nosuch.stderr
        destroy = _kosctl(tmp_path, "cluster", "destroy", "--name", name, env=env)
        assert destroy.returncode == 0, destroy.stderr
        assert f"destroying qemu cluster {name!r}" in destroy.stdout
        qemu.wait(timeout=10)
        assert not cdir.exists()
        assert not (NETNS_DIR / net.netns).exists()
    finally:
        if qemu is not None and qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        if (NETNS_DIR / net.netns).exists():
            net.destroy()
