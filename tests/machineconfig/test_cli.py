"""kosctl gen/validate/machineconfig as subprocesses: files written with safe modes, output
that loads and validates, certificates that chain, and one-line errors with exit code 1."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kos.resources import machineconfig as mc
from kos.resources import pki


def kosctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gen")
    (d / "patch.yaml").write_text("machine:\n  network:\n    hostname: node-a\n")
    r = kosctl("gen", "config", "demo", "https://10.5.0.2:6443", "--additional-sans", "a.example,192.0.2.5",
               "--config-patch", "@patch.yaml", "--config-patch-worker",
               '[{"op": "replace", "path": "/machine/install/disk", "value": "/dev/vdb"}]',
               "--kubernetes-version", "1.29.3", "-o", "out", cwd=d)
    assert r.returncode == 0, r.stderr
    return d


def test_gen_config_files(gen_dir: Path) -> None:
    out = gen_dir / "out"
    assert sorted(p.name for p in out.iterdir()) == ["controlplane.yaml", "kosconfig", "secrets.yaml", "worker.yaml"]
    for p in out.iterdir():
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    cp = mc.ConfigContainer.load((out / "controlplane.yaml").read_text())
    wk = mc.ConfigContainer.load((out / "worker.yaml").read_text())
    assert cp.config.machine.network.hostname == "node-a" == wk.config.machine.network.hostname
    assert wk.config.machine.install.disk == "/dev/vdb" and cp.config.machine.install.disk == "/dev/sda"
    assert cp.config.machine.kubelet.image.endswith(":v1.29.3")
    assert cp.config.machine.cert_sans == ["a.example", "192.0.2.5"]
    assert not wk.config.machine.ca.key and not wk.config.cluster.ca.key
    bundle = mc.SecretsBundle.load((out / "secrets.yaml").read_text())
    assert cp.config.machine.ca == bundle.certs.os
    client = mc.ClientConfig.load_file(out / "kosconfig")
    _, ctx = client.current()
    crt = ctx.crt
    pki.verify_chain(crt, bundle.certs.os.to_pair().cert_pem)
    assert pki.certificate_organizations(crt) == ("os:admin",)


def test_gen_config_refuses_overwrite_then_force(gen_dir: Path) -> None:
    r = kosctl("gen", "config", "demo", "10.5.0.2", "-o", "out", cwd=gen_dir)
    assert r.returncode == 1
    assert r.stderr.strip().endswith("controlplane.yaml: already exists (use --force to overwrite)")
    before = (gen_dir / "out" / "secrets.yaml").read_text()
    r = kosctl("gen", "config", "demo", "10.5.0.2", "-o", "out", "--force",
               "--with-secrets", "out/secrets.yaml", cwd=gen_dir)
    assert r.returncode == 0, r.stderr
    assert (gen_dir / "out" / "secrets.yaml").read_text() == before
    cp = mc.ConfigContainer.load((gen_dir / "out" / "controlplane.yaml").read_text())
    assert cp.config.cluster.id == mc.SecretsBundle.load(before).cluster.id


def test_validate_and_patch_commands(gen_dir: Path) -> None:
    r = kosctl("validate", "--config", "out/worker.yaml", "--mode", "metal", cwd=gen_dir)
    assert r.returncode == 0 and "out/worker.yaml is valid for metal mode" in r.stdout, r.stderr
    r = kosctl("machineconfig", "patch", "out/worker.yaml", "--patch",
               "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        mtu: 70000\n",
               "-o", "bad.yaml", cwd=gen_dir)
    assert r.returncode == 0, r.stderr
    r = kosctl("validate", "-c", "bad.yaml", "-m", "cloud", cwd=gen_dir)
    assert r.returncode == 1
    assert "machine.network.interfaces[0].mtu: 70000 is invalid, expected an MTU between 68 and 65535" in r.stderr
    r = kosctl("mc", "patch", "out/worker.yaml", "-p", "machine: {oops: 1}", cwd=gen_dir)
    assert r.returncode == 1 and "machine.oops: unknown field" in r.stderr
    r = kosctl("validate", "-c", "missing.yaml", "-m", "metal", cwd=gen_dir)
    assert r.returncode == 1 and r.stderr.strip() == "error: config file 'missing.yaml': No such file or directory"


def test_pki_commands(tmp_path: Path) -> None:
    assert kosctl("gen", "ca", "--organization", "myca", cwd=tmp_path).returncode == 0
    assert kosctl("gen", "key", "--name", "admin", cwd=tmp_path).returncode == 0
    r = kosctl("gen", "csr", "--key", "admin.key", "--ip", "10.0.0.7", "--roles", "os:reader", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = kosctl("gen", "crt", "--ca", "myca", "--csr", "admin.csr", "--name", "admin", "--hours", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    crt = (tmp_path / "admin.crt").read_bytes()
    pki.verify_chain(crt, (tmp_path / "myca.crt").read_bytes())
    assert pki.certificate_organizations(crt) == ("os:reader",)
    assert "10.0.0.7" in pki.certificate_sans(crt)
    pki.CertificateAndKey(crt, (tmp_path / "admin.key").read_bytes()).check()
    r = kosctl("gen", "crt", "--ca", "nope", "--csr", "admin.csr", "--name", "x", cwd=tmp_path)
    assert r.returncode == 1 and "expected nope.crt and nope.key" in r.stderr
    r = kosctl("gen", "crt", "--ca", "myca", "--csr", "admin.csr", "--name", "x", "--hours", "0", cwd=tmp_path)
    assert r.returncode == 1 and "--hours: 0 is invalid" in r.stderr
    r = kosctl("gen", "secrets", "-o", "s.yaml", cwd=tmp_path)
    assert r.returncode == 0 and mc.SecretsBundle.load((tmp_path / "s.yaml").read_text()).trustd_info.token


def test_gen_config_bad_input(tmp_path: Path) -> None:
    r = kosctl("gen", "config", "demo", "ftp://x", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "error: endpoint: 'ftp://x' is invalid, expected https://HOST[:PORT]"
    r = kosctl("gen", "config", "demo", "x", "--config-patch", "machine: [", cwd=tmp_path)
    assert r.returncode == 1 and "valid YAML" in r.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_diff_command(gen_dir: Path) -> None:
    r = kosctl("mc", "patch", "out/controlplane.yaml", "-p",
               '[{"op": "replace", "path": "/machine/install/disk", "value": "/dev/vdc"}]', "-o", "new.yaml",
               cwd=gen_dir)
    assert r.returncode == 0, r.stderr
    r = kosctl("mc", "diff", "out/controlplane.yaml", "new.yaml", cwd=gen_dir)
    assert r.returncode == 0, r.stderr
    assert "-    disk: /dev/sda\n+    disk: /dev/vdc\n" in r.stdout
    assert r.stdout.endswith("changed: machine.install.disk\nreboot required: machine.install.disk\n")
    r = kosctl("mc", "diff", "out/controlplane.yaml", "out/controlplane.yaml", cwd=gen_dir)
    assert r.stdout == "changed: nothing\nreboot required: no\n"
