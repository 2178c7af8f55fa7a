"""EtcdLeaderElection against a real (single-member, plain-http) etcd in a private network
namespace: the member's node is leader; when etcd goes away it is not any more (and would
release the VIP). The client runs in a child inside the namespace (``election_child.py``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.network.netns import needs_netns, netns, nsenter

pytestmark = [needs_netns]


def test_etcd_leader_election(tmp_path: Path) -> None:
    binary = shutil.which("etcd")
    if binary is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    with netns("elect") as path:
        nsenter(path, "ip", "link", "set", "lo", "up")
        etcd = subprocess.Popen(
            ["nsenter", f"--net={path}", binary, "--name", "e1", "--data-dir", str(tmp_path / "data"),
             "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
             "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
             "--initial-cluster", "e1=http://127.0.0.1:2380", "--heartbeat-interval", "50",
             "--election-timeout", "300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        child = subprocess.Popen(
            ["nsenter", f"--net={path}", sys.executable, str(Path(__file__).with_name("election_child.py")),
             "http://127.0.0.1:2379"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "leader"
            etcd.terminate()
            etcd.wait(20)
            out, err = child.communicate(timeout=40)
            assert out.strip() == "follower", err
        finally:
            for p in (child, etcd):
                if p.poll() is None:
                    p.kill()
                    p.wait()
