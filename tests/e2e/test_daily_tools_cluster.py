"""The operator's daily tools on a real local cluster (1 control plane + 1 worker, machined as
PID 1 in namespaces, reached through the control plane's forwarding endpoint): files of a
container node, mounts and netstat (etcd and the API listening), etcd status --cluster /
alarm list / defrag, patch machineconfig (dry run and a real change seen in the resource),
inspect dependencies with the real controllers' live counts, META refused on a container node,
the support bundle of both nodes, and the dashboard switching between them in tmux."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_namespace_cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

CP, W = "10.5.0.2", "10.5.0.3"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Created without waiting for the whole health (Kubernetes readiness is another area's
    test): ready once etcd answers on the control plane and both nodes are members."""
    tmp = tmp_path_factory.mktemp("daily")
    # no Kubernetes here (tests/e2e/test_kubernetes.py runs it): the kubelet waits for its binary
    env = dict(os.environ, KOSCONFIG=str(tmp / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path),
               KOS_K8S_DIR=str(tmp / "no-kubernetes"))
    c = Cluster("d" + uuid.uuid4().hex[:6], tmp / "clusters", env)
    try:
        c.kosctl("cluster", "create", "--name", c.name, "--state-root", str(c.root), "--controlplanes", "1",
                 "--workers", "1", "--no-wait", timeout=300)
        deadline = time.monotonic() + 180
        while True:
            etcd = c.ctl("etcd", "status", "-n", CP, check=False)
            members = c.ctl("get", "members", "-n", CP, check=False)
            if etcd.returncode == 0 and members.stdout.count("\n") >= 3:
                break
            assert time.monotonic() < deadline, f"cluster not up: {etcd.stderr} {members.stdout}"
            time.sleep(2)
        yield c
    finally:
        c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)


def test_files_and_diagnostics_of_container_nodes(cluster: Cluster) -> None:
    c = cluster
    top = c.ctl("ls", "/", "-n", f"{CP},{W}").stdout
    assert f"{CP}   var" in top and f"{W}   etc" in top
    hostname = c.ctl("read", "/etc/hostname", "-n", W).stdout
    assert hostname.strip() == "w-1" or hostname.strip().startswith("w")
    out = c.ctl("read", "/var/lib/etcd/member/snap/db", "-n", CP, check=False)
    assert out.returncode == 1 and "PERMISSION_DENIED" in out.stderr and "etcd" in out.stderr
    mounts = c.ctl("mounts", "-n", CP).stdout
    assert " /var" in mounts or "/var\n" in mounts
    listening = c.ctl("netstat", "-l", "-p", "-n", CP).stdout
    assert ":50000 " in listening and ":2379 " in listening and "/etcd" in listening, listening
    usage = c.ctl("usage", "-d", "1", "/var/lib", "-n", CP).stdout
    assert "/var/lib/etcd" not in usage  # withheld, not even its size
    meta = c.ctl("meta", "list", "-n", W, check=False)
    assert meta.returncode == 1 and "FAILED_PRECONDITION" in meta.stderr and "META: " in meta.stderr


def test_etcd_maintenance_across_the_control_planes(cluster: Cluster) -> None:
    c = cluster
    rows = c.ctl("etcd", "status", "--cluster").stdout.splitlines()
    assert rows[0].startswith("NODE") and [r.split()[0] for r in rows[1:]] == [CP]
    assert c.ctl("etcd", "alarm", "list", "-n", CP).stdout.splitlines() == ["NODE   MEMBER   ALARM"]
    assert f"{CP}: defragmented: " in c.ctl("etcd", "defrag", "-n", CP).stdout
    worker = c.ctl("etcd", "alarm", "list", "-n", W, check=False)
    assert worker.returncode == 1 and "etcd is not running on this node" in worker.stderr


def test_patch_machineconfig_on_a_running_node(cluster: Cluster) -> None:
    c = cluster
    patch = '{"machine": {"sysctls": {"vm.max_map_count": "262145"}}}'
    dry = c.ctl("patch", "machineconfig", "-p", patch, "--dry-run", "-n", W).stdout
    assert "Dry run" in dry and "vm.max_map_count" in dry
    out = c.ctl("patch", "mc", "-p", patch, "--mode", "no-reboot", "-n", W).stdout
    assert f"{W}: Applied configuration without a reboot" in out
    config = c.ctl("get", "machineconfig", "-o", "yaml", "-n", W).stdout
    assert "vm.max_map_count: \"262145\"" in config or "vm.max_map_count: '262145'" in config, config[-2000:]
    again = c.ctl("patch", "mc", "-p", patch, "--dry-run", "-n", W).stdout
    assert "No changes" in again or "+" not in again.split("Dry run", 1)[1].replace("+++", "")


def test_inspect_dependencies_of_a_running_node(cluster: Cluster) -> None:
    dot = cluster.ctl("inspect", "dependencies", "-n", CP).stdout
    assert dot.startswith("digraph controllers {")
    assert dot.count("shape=box") > 20 and "reconciles " in dot
    assert '"type:EtcdSpecs.etcd.kos.dev"' in dot


def test_support_bundle_of_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "support.zip"
    r = cluster.ctl("support", "-O", str(out), timeout=300)  # no -n: every member of the cluster
    assert f"wrote {out}" in r.stdout
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        for node in (CP, W):
            for f in ("machineconfig.yaml", "dmesg.log", "services.txt", "resources/Members.cluster.kos.dev.yaml"):
                assert f"{node}/{f}" in names, (node, f)
        assert f"{CP}/etcd-status.txt" in names and f"{CP}/logs/etcd.log" in names
        config = z.read(f"{CP}/machineconfig.yaml").decode()
        assert "******" in config and "BEGIN" not in config  # keys and certificates redacted
        assert z.read(f"{CP}/resources/OSRootSecrets.secrets.kos.dev.yaml").startswith(b"# sensitive")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_dashboard_of_the_cluster(cluster: Cluster) -> None:
    pytest.importorskip("textual")
    session = f"kosdash-{uuid.uuid4().hex[:6]}"
    env = " ".join(f"{k}={v}" for k, v in (("KOSCONFIG", cluster.env["KOSCONFIG"]),
                                            ("PYTHONPATH", os.pathsep.join(sys.path))))
    cmd = f"{env} {sys.executable} -m kos.apis.kosctl.main --context {cluster.name} dashboard -n {CP},{W}"

    def shows(*texts: str, timeout: float = 30) -> str:
        deadline, shown = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            shown = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                   text=True).stdout
            if all(t in shown for t in texts):
                return shown
            time.sleep(0.3)
        raise AssertionError(f"dashboard did not show {texts}:\n{shown}")

    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", cmd], check=True)
    try:
        first = shows(f"NODE {CP} (1/2)", "STAGE      running", "etcd")
        assert "CLUSTER MEMBERS" in first
        subprocess.run(["tmux", "send-keys", "-t", session, "Right"], check=True)
        shows(f"NODE {W} (2/2)")
        subprocess.run(["tmux", "send-keys", "-t", session, "3"], check=True)
        shows("[3] NETWORK", "eth0", CP.rsplit(".", 1)[0])
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
