"""A real kube-apiserver for tests: etcd (Debian) + kube-apiserver from the Kubernetes build
cache (``kos.platform.image.k8s.binary``), on free loopback ports, with a fresh CA, the Node
authorizer and the NodeRestriction admission plugin (as a kos control plane runs it). Skipped
when the binaries are not built."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kos.platform.image.k8s import binary
from kos.resources.pki import CertificateAndKey, generate_ca, generate_private_key, issue_certificate, private_key_pem


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KubeAPI:
    url: str
    ca: CertificateAndKey
    admin: CertificateAndKey
    dir: Path

    def identity(self, common_name: str, organizations: list[str]) -> CertificateAndKey:
        return issue_certificate(self.ca, common_name=common_name, organizations=organizations, client=True)

    def call(self, method: str, path: str, body: Any = None, who: CertificateAndKey | None = None) -> Any:
        who = who or self.admin
        d = self.dir / f"id-{abs(hash(who.cert_pem))}"
        if not d.exists():
            d.mkdir()
            who.to_files(d / "c.crt", d / "c.key")
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        ctx.load_cert_chain(d / "c.crt", d / "c.key")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return json.loads(resp.read())


@pytest.fixture(scope="module")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    apiserver = binary("kube-apiserver")
    if not apiserver.exists() or shutil.which("etcd") is None:
        pytest.skip("kube-apiserver (Kubernetes build cache) or etcd not available")
    d = tmp_path_factory.mktemp("kubeapi")
    ca = generate_ca("kubernetes")
    ca.to_files(d / "ca.crt", d / "ca.key")
    issue_certificate(ca, common_name="kube-apiserver", ip_addresses=["127.0.0.1"], dns_names=["localhost"],
                      server=True).to_files(d / "srv.crt", d / "srv.key")
    (d / "sa.key").write_bytes(private_key_pem(generate_private_key("ecdsa")))
    admin = issue_certificate(ca, common_name="kos-admin", organizations=["system:masters"], client=True)
    etcd_port, peer_port, port = free_port(), free_port(), free_port()
    etcd = subprocess.Popen(["etcd", "--data-dir", str(d / "etcd"), "--listen-client-urls",
                             f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = subprocess.Popen([
        str(apiserver), f"--etcd-servers=http://127.0.0.1:{etcd_port}", "--bind-address=127.0.0.1",
        f"--secure-port={port}", f"--tls-cert-file={d / 'srv.crt'}", f"--tls-private-key-file={d / 'srv.key'}",
        f"--client-ca-file={d / 'ca.crt'}", f"--service-account-key-file={d / 'sa.key'}",
        f"--service-account-signing-key-file={d / 'sa.key'}", "--service-account-issuer=https://kubernetes.default.svc",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        "--service-cluster-ip-range=10.96.0.0/12", "--advertise-address=127.0.0.1",
    ], stdout=(d / "apiserver.log").open("w"), stderr=subprocess.STDOUT)
    kube = KubeAPI(f"https://127.0.0.1:{port}", ca, admin, d)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert api.poll() is None, (d / "apiserver.log").read_text()[-2000:]
            try:
                ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
                admin.to_files(d / "a.crt", d / "a.key")
                ctx.load_cert_chain(d / "a.crt", d / "a.key")
                with urllib.request.urlopen(kube.url + "/readyz", context=ctx, timeout=5) as r:
                    if r.read() == b"ok":
                        break
            except (OSError, urllib.error.URLError):
                pass
            assert time.monotonic() < deadline, "kube-apiserver did not become ready"
            time.sleep(0.5)
        yield kube
    finally:
        for p in (api, etcd):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
