"""The Talos multi-doc kinds the system controllers act on, as well as the v1alpha1 fields:
SysctlConfig -> KernelParamSpecs; RegistryMirrorConfig / RegistryAuthConfig / RegistryTLSConfig
-> hosts.toml (PEM text in the documents, base64 in v1alpha1)."""

from __future__ import annotations

import base64
import tomllib

import pytest

from kos.controllers.system import render
from kos.resources.machineconfig import DOCUMENT_KINDS, ConfigContainer
from kos.resources.pki import generate_ca
from kos.resources.runtime import KernelParamSpecSpec, RegistryHostSpecSpec
from tests.system.helpers import machine_config

needs_kinds = pytest.mark.skipif(
    not {"SysctlConfig", "RegistryMirrorConfig", "RegistryAuthConfig", "RegistryTLSConfig"} <= set(DOCUMENT_KINDS),
    reason="the Talos v1.12 multi-doc kinds are not in this tree yet")


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + ln for ln in text.splitlines())


@needs_kinds
def test_sysctl_config_documents_add_to_and_override_machine_sysctls() -> None:
    c = ConfigContainer.load(machine_config('sysctls: {net.ipv4.ip_forward: "0", net.core.somaxconn: "512"}') + """---
apiVersion: v1alpha1
kind: SysctlConfig
params:
  net.ipv4.ip_forward: "1"
  net.ipv4.tcp_keepalive_time: "600"
""")
    specs = render.kernel_params(c)
    got = {k: (s.value, s.source) for k, s in specs.items() if isinstance(s, KernelParamSpecSpec)}
    assert got == {"net.ipv4.ip_forward": ("1", "SysctlConfig"), "net.core.somaxconn": ("512", "machine.sysctls"),
                   "net.ipv4.tcp_keepalive_time": ("600", "SysctlConfig")}


@needs_kinds
def test_registry_documents_render_like_machine_registries() -> None:
    ca = generate_ca("mirror-ca").cert_pem.decode()
    c = ConfigContainer.load(machine_config("env: {A: b}") + f"""---
apiVersion: v1alpha1
kind: RegistryMirrorConfig
name: docker.io
endpoints:
  - url: https://mirror.local:5443
  - url: http://10.5.0.1:5000/v2/proxy
    overridePath: true
---
apiVersion: v1alpha1
kind: RegistryAuthConfig
name: mirror.local:5443
username: kos
password: s3cret
---
apiVersion: v1alpha1
kind: RegistryTLSConfig
name: mirror.local:5443
ca: |
{_indent(ca, 2)}
""", strict=False)
    specs = render.registry_hosts("/etc/containerd/certs.d")(c)
    docker = specs["docker.io"]
    assert isinstance(docker, RegistryHostSpecSpec)
    toml = tomllib.loads(docker.hosts_toml)
    assert list(toml["host"]) == ["https://mirror.local:5443", "http://10.5.0.1:5000/v2/proxy"]
    first = toml["host"]["https://mirror.local:5443"]
    assert first["ca"] == "/etc/containerd/certs.d/docker.io/0-ca.crt" and docker.files["0-ca.crt"] == ca
    assert first["header"]["authorization"] == ["Basic " + base64.b64encode(b"kos:s3cret").decode()]
    assert toml["host"]["http://10.5.0.1:5000/v2/proxy"]["override_path"] is True
    assert "mirror.local:5443" in specs  # pulling from the mirror host directly uses its TLS/auth too
