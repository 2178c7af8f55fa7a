"""``kosctl kubeconfig`` as a subprocess: locally from a control-plane config or a secrets
bundle, and through a real machined's State API (mutual TLS); the kubeconfig loads with the
official client library and its certificate chains to the Kubernetes CA as admin /
system:masters. Refusals are one line naming the problem and exit 1."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import yaml

from kos.apis.client import ClientConfig, Connection, GrpcState
from kos.controllers.secrets.issue import k8s_certs
from kos.resources.core import Resource
from kos.resources.machineconfig import SecretsBundle
from kos.resources.pki import check_kubeconfig
from kos.resources.secrets import CertSANSpec, KubernetesRootSpec
from tests.apis.nodeproc import kosctl, machined

ENDPOINT = "https://10.5.0.2:6443"


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gen")
    r = kosctl("gen", "config", "demo", ENDPOINT, "-o", str(d))
    assert r.returncode == 0, r.stderr
    return d


def k8s_ca(gen: Path) -> str:
    b = SecretsBundle.load((gen / "secrets.yaml").read_text())
    return b.certs.k8s.to_pair().cert_pem.decode()


def check(path: Path, ca: str, server: str = ENDPOINT, cluster: str = "demo") -> None:
    text = path.read_text()
    info = check_kubeconfig(text, ca, expect_cn="admin", expect_orgs=("system:masters",))
    assert info.server == server
    assert yaml.safe_load(text)["current-context"] == f"admin@{cluster}"
    from kubernetes.config.kube_config import KubeConfigLoader

    loader = KubeConfigLoader(yaml.safe_load(text))
    loader.load_and_set(type("C", (), {})())  # the client library builds a configuration from it
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_from_config_and_secrets(gen: Path, tmp_path: Path) -> None:
    out = tmp_path / "kc"
    r = kosctl("kubeconfig", str(out), "--from-config", str(gen / "controlplane.yaml"))
    assert r.returncode == 0, r.stderr
    check(out, k8s_ca(gen))
    r = kosctl("kubeconfig", str(out), "--from-config", str(gen / "controlplane.yaml"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: {out}: exists; use --force to overwrite or --merge to merge"
    r = kosctl("kubeconfig", str(out), "--force", "--secrets", str(gen / "secrets.yaml"), "--endpoint",
               "https://k.example:6443", "--cluster", "other")
    assert r.returncode == 0, r.stderr
    check(out, k8s_ca(gen), "https://k.example:6443", "other")


def test_merge_keeps_other_entries(gen: Path, tmp_path: Path) -> None:
    out = tmp_path / "kc"
    assert kosctl("kubeconfig", str(out), "--secrets", str(gen / "secrets.yaml"), "--endpoint",
                  "https://a.example:6443", "--cluster", "a").returncode == 0
    r = kosctl("kubeconfig", str(out), "--merge", "--from-config", str(gen / "controlplane.yaml"))
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(out.read_text())
    assert [c["name"] for c in doc["clusters"]] == ["a", "demo"]
    assert [c["name"] for c in doc["contexts"]] == ["admin@a", "admin@demo"]
    assert doc["current-context"] == "admin@demo"
    check(out, k8s_ca(gen))


def test_refusals_name_the_problem(gen: Path, tmp_path: Path) -> None:
    def err(*args: str) -> str:
        r = kosctl("kubeconfig", *args)
        assert r.returncode == 1, r
        assert len(r.stderr.strip().splitlines()) == 1
        return r.stderr.strip()

    assert "cluster.ca.key is empty (a worker config?)" in err(str(tmp_path / "x"), "--from-config",
                                                              str(gen / "worker.yaml"))
    assert err("-", "--secrets", str(gen / "secrets.yaml")) == \
        "error: --secrets: --endpoint URL is required (the bundle does not hold the endpoint)"
    assert "expected an https:// URL" in err("-", "--secrets", str(gen / "secrets.yaml"), "--endpoint", "k:6443")
    assert "No such file" in err("-", "--from-config", str(tmp_path / "missing.yaml"))
    assert err("-", "--force", "--merge", "--secrets", "x") == "error: --force and --merge: choose one"
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    sd = tmp_path_factory.mktemp("node")
    with machined(sd, "--no-controllers", "--writable-namespace", "secrets") as ep:
        yield ep, sd


@pytest.mark.root
def test_via_the_api_uses_the_nodes_admin_certificate(node: tuple[str, Path], gen: Path, tmp_path: Path) -> None:
    ep, sd = node
    out = tmp_path / "kc"
    r = kosctl("kubeconfig", str(out), "-e", ep, kosconfig=sd / "kosconfig")
    assert r.returncode == 1 and "no Kubernetes certificates (KubernetesCerts k8s-certs)" in r.stderr, r.stderr

    b = SecretsBundle.load((gen / "secrets.yaml").read_text())
    ca = b.certs.k8s.to_pair()
    agg = b.certs.k8s_aggregator.to_pair()
    root = KubernetesRootSpec(ca_cert=ca.cert_pem.decode(), ca_key=ca.key_pem.decode(),
                              aggregator_ca_cert=agg.cert_pem.decode(), aggregator_ca_key=agg.key_pem.decode(),
                              service_account_key=b.certs.k8s_service_account.pem().decode(),
                              endpoint=ENDPOINT, cluster_name="demo")
    spec = k8s_certs(root, CertSANSpec(dns_names=["kubernetes"], ips=["10.96.0.1"]))

    async def publish() -> None:
        _, ctx = ClientConfig.load(sd / "kosconfig").current()
        conn = Connection.from_context(ctx, endpoint=ep)
        try:
            await GrpcState(conn).create(Resource.new(spec, "k8s-certs"))
        finally:
            conn.close()

    anyio.run(publish)
    r = kosctl("kubeconfig", str(out), "-e", ep, kosconfig=sd / "kosconfig")
    assert r.returncode == 0, r.stderr
    check(out, ca.cert_pem.decode())
    user = yaml.safe_load(out.read_text())["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]).decode() == spec.admin_cert  # the node's, not a new one
