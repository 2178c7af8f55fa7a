"""GenerateClientConfiguration on the control plane of a ``kosctl cluster create`` cluster
(issue 15 item 6): the control plane signs with the OS CA of its machine config's secrets
(OSRootSecrets), as Talos does; the kosconfig ``kosctl get-client-config`` writes works from
where it was asked for, carries only the roles asked for and the lifetime asked for; a
reader cannot ask; a worker (no CA key) says to ask a control plane; bad roles and lifetimes
are refused."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
CP, W = "10.5.0.2", "10.5.0.3"


@dataclass
class Cluster:
    name: str
    root: Path
    env: dict[str, str]

    def kosctl(self, *args: str, config: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, KOSCONFIG=str(config)) if config else self.env
        ctx = [] if config else ["--context", self.name]
        proc = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *ctx, *args], env=env,
                              capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"kosctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # no Kubernetes here (tests/e2e/test_kubernetes.py runs it): the kubelet waits for its binary
    env = dict(os.environ, KOSCONFIG=str(tmp_path / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path),
               KOS_K8S_DIR=str(tmp_path / "no-kubernetes"))
    c = Cluster("g" + uuid.uuid4().hex[:6], tmp_path / "clusters", env)
    create = ["cluster", "create", "--name", c.name, "--state-root", str(c.root), "--controlplanes", "1",
              "--workers", "1", "--no-wait"]  # Kubernetes is not what this test is about
    try:
        proc = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *create], env=env,
                              capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, f"cluster create failed:\n{proc.stdout}\n{proc.stderr}"
        deadline = time.monotonic() + 240
        while True:  # both nodes serve their API with certificates from the cluster's secrets
            up = c.kosctl("-n", f"{CP},{W}", "get", "apicerts", check=False)
            if up.returncode == 0 and len(up.stdout.splitlines()) == 3:
                break
            assert time.monotonic() < deadline, f"the nodes' API did not come up:\n{up.stdout}\n{up.stderr}"
            time.sleep(2)
        yield c
    finally:
        subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "cluster", "destroy", "--name", c.name,
                        "--state-root", str(c.root)], env=env, capture_output=True, timeout=300)


def _certificate(kosconfig: Path) -> x509.Certificate:
    import base64

    data = yaml.safe_load(kosconfig.read_text())
    ctx = data["contexts"][data["context"]]
    return x509.load_pem_x509_certificate(base64.b64decode(ctx["crt"]))


def test_a_control_plane_issues_client_configurations(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    reader = tmp_path / "reader.kosconfig"
    out = c.kosctl("get-client-config", str(reader), "--roles", "os:reader", "--crt-ttl", "2h").stdout
    assert "wrote" in out and "os:reader" in out
    crt = _certificate(reader)
    assert [a.value for a in crt.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["os:reader"]
    expires_in = crt.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(hours=2) - datetime.timedelta(minutes=5) <= expires_in <= datetime.timedelta(hours=2)

    # the new kosconfig reaches the cluster from here, as a reader of both nodes
    rows = c.kosctl("-n", f"{CP},{W}", "get", "machinestatus", config=reader).stdout.splitlines()[1:]
    assert {r.split()[0] for r in rows} == {CP, W}
    denied = c.kosctl("get", "osrootsecrets", config=reader, check=False)
    assert denied.returncode != 0 and "PERMISSION_DENIED" in denied.stderr and "os:admin" in denied.stderr
    denied = c.kosctl("get-client-config", "-", config=reader, check=False)
    assert denied.returncode != 0 and "PERMISSION_DENIED" in denied.stderr

    # forwarded to the control plane by name works too; the worker has no CA key
    assert "contexts:" in c.kosctl("-n", CP, "get-client-config", "-", "--roles", "os:operator").stdout
    worker = c.kosctl("-n", W, "get-client-config", "-", "--roles", "os:reader", check=False)
    assert worker.returncode != 0 and "FAILED_PRECONDITION" in worker.stderr and "control plane" in worker.stderr

    # limits: known roles only, a lifetime of at most ten years
    bad = c.kosctl("get-client-config", "-", "--crt-ttl", "100000h", check=False)
    assert bad.returncode != 0 and "INVALID_ARGUMENT" in bad.stderr and "crt_ttl" in bad.stderr
    bad = c.kosctl("get-client-config", "-", "--roles", "os:impersonator", check=False)
    assert bad.returncode != 0 and "--roles" in bad.stderr
