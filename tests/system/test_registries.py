"""machine.registries -> RegistryHostSpecs -> ``<certs.d>/<registry>/hosts.toml`` (+ CA/client
files) -> RegistryHostStatuses, and the real containerd (1.6, CRI plugin with ``config_path``
pointing at that directory, as a node runs it) pulling through the configured mirror: the
pull reaches the mirror over TLS trusting the configured CA, with the configured credentials."""

from __future__ import annotations

import base64
import http.server
import shutil
import ssl
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.system import render
from kos.controllers.system.configspecs import ConfigSpecsController
from kos.controllers.system.registries import RegistryHostApplyController
from kos.machined.services.containerd import ContainerdPaths, render_config
from kos.resources.machineconfig import ConfigContainer
from kos.resources.pki import generate_ca, issue_certificate
from kos.resources.runtime import REGISTRY_HOST_STATUSES, RegistryHostSpecSpec
from tests.system.helpers import machine_config, running, set_config

pytestmark = pytest.mark.anyio


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def registries(mirror: str, ca_pem: bytes) -> str:
    host = mirror.removeprefix("https://")
    return f"""
registries:
  mirrors:
    docker.io:
      endpoints: ["{mirror}"]
    ghcr.io:
      endpoints: ["http://127.0.0.1:1"]
      overridePath: true
  config:
    "{host}":
      tls: {{ca: {b64(ca_pem)}}}
      auth: {{username: kos, password: s3cret}}
    registry.local:5000:
      tls: {{insecureSkipVerify: true}}
"""


def test_hosts_toml_is_rendered_per_registry(tmp_path: Path) -> None:
    ca = generate_ca("mirror-ca")
    c = ConfigContainer.load(machine_config(registries("https://127.0.0.1:5443", ca.cert_pem)), strict=False)
    specs = render.registry_hosts(str(tmp_path))(c)
    # the mirror's own host gets its TLS/auth too (pulled from directly, as well as as a mirror)
    assert sorted(specs) == ["127.0.0.1:5443", "docker.io", "ghcr.io", "registry.local:5000"]
    docker = specs["docker.io"]
    assert isinstance(docker, RegistryHostSpecSpec)
    toml = tomllib.loads(docker.hosts_toml)
    assert toml["server"] == "https://registry-1.docker.io"
    host = toml["host"]["https://127.0.0.1:5443"]
    assert host["capabilities"] == ["pull", "resolve"]
    assert host["ca"] == f"{tmp_path}/docker.io/0-ca.crt" and docker.files["0-ca.crt"] == ca.cert_pem.decode()
    assert host["header"]["authorization"] == ["Basic " + b64(b"kos:s3cret")]
    ghcr = tomllib.loads(specs["ghcr.io"].hosts_toml)  # type: ignore[attr-defined]
    assert ghcr["host"]["http://127.0.0.1:1"]["override_path"] is True
    local = tomllib.loads(specs["registry.local:5000"].hosts_toml)  # type: ignore[attr-defined]
    assert local == {"server": "https://registry.local:5000",
                     "host": {"https://registry.local:5000": {"capabilities": ["pull", "resolve"],
                                                              "skip_verify": True}}}


@pytest.mark.parametrize(("registries_yaml", "field"), [
    ("registries: {mirrors: {docker.io: {endpoints: [ftp://x]}}}", "machine.registries.mirrors.docker.io.endpoints[0]"),
    ("registries: {mirrors: {'../etc': {endpoints: [http://x]}}}", "machine.registries"),
    ("registries: {config: {r.io: {tls: {ca: notbase64!}}}}", "machine.registries.config.r.io.tls.ca"),
    ("registries: {mirrors: {docker.io: {endpoints: http://x}}}", "machine.registries.mirrors.docker.io.endpoints"),
])
def test_bad_registry_config_names_the_field(registries_yaml: str, field: str) -> None:
    c = ConfigContainer.load(machine_config(registries_yaml), strict=False)
    with pytest.raises(ValueError, match=field.replace(".", r"\.").replace("[", r"\[")):
        render.registry_hosts("/x")(c)


class _Mirror(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization", "")))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tls_mirror(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """An HTTPS server on 127.0.0.1 with a certificate from its own CA; records requests."""
    ca = generate_ca("mirror-ca")
    cert = issue_certificate(ca, common_name="127.0.0.1", ip_addresses=["127.0.0.1"], server=True)
    cert.to_files(tmp_path / "srv.crt", tmp_path / "srv.key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    _Mirror.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca.cert_pem
    finally:
        server.shutdown()
        server.server_close()


def _pull_request(image: str) -> bytes:
    """runtime.v1.PullImageRequest{image: ImageSpec{image}} in protobuf wire form."""
    spec = b"\x0a" + bytes([len(image)]) + image.encode()
    return b"\x0a" + bytes([len(spec)]) + spec


def _cri_pull(socket: Path, image: str) -> str:
    import grpc

    with grpc.insecure_channel(f"unix://{socket}") as ch:
        pull = ch.unary_unary("/runtime.v1.ImageService/PullImage", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        try:
            pull(_pull_request(image), timeout=30)
        except grpc.RpcError as exc:
            return str(exc.details())  # type: ignore[attr-defined]
    return ""


@pytest.fixture
def containerd_cri(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The real containerd with the node's config (CRI on), its registry ``config_path`` pointed at
    ``<tmp>/certs.d``; yields (socket, certs.d)."""
    if shutil.which("containerd") is None:
        pytest.skip("containerd not installed")
    certs_d = tmp_path / "certs.d"
    base = Path(f"/tmp/kos-reg-{tmp_path.name}"[:60])  # unix socket paths are limited to 108 bytes
    paths = ContainerdPaths.under(base)
    config = "\n".join(f'  config_path = "{certs_d}"' if ln.strip().startswith("config_path") else ln
                       for ln in render_config(paths, cri=True).splitlines())
    assert f'config_path = "{certs_d}"' in config
    base.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(config)
    proc = subprocess.Popen(["containerd", "--config", str(paths.config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not paths.socket.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.1)
        yield paths.socket, certs_d
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.root
async def test_containerd_pulls_through_the_rendered_mirror(tls_mirror: tuple[str, bytes],
                                                            containerd_cri: tuple[Path, Path]) -> None:
    mirror, ca_pem = tls_mirror
    socket, certs_d = containerd_cri
    ctrls = [ConfigSpecsController("system.RegistryConfigController", RegistryHostSpecSpec,
                                   render.registry_hosts(str(certs_d))),
             RegistryHostApplyController(hosts_dir=str(certs_d))]
    async with running(ctrls) as state:
        await set_config(state, machine_config(registries(mirror, ca_pem)))
        await assert_resources(state, REGISTRY_HOST_STATUSES, ["docker.io", "ghcr.io", "registry.local:5000"],
                               lambda r: r.spec.state == "applied")
        error = await anyio.to_thread.run_sync(_cri_pull, socket, "docker.io/library/busybox:1.35.0")
        assert error  # the mirror answers 404 and the fallback is unreachable: the pull fails, after...
        requests = list(_Mirror.seen)
        assert requests, f"containerd never asked the mirror (pull error: {error})"
        _, path, auth = requests[0]  # ...asking the mirror over TLS (our CA) with the configured credentials
        assert path.startswith("/v2/library/busybox/manifests/1.35.0"), requests
        assert auth == "Basic " + b64(b"kos:s3cret")

        # the registry's config goes: its directory goes, containerd no longer uses the mirror
        await set_config(state, machine_config("env: {A: b}"))
        await assert_no_resource(state, REGISTRY_HOST_STATUSES.pointer("docker.io"))
        assert not await anyio.Path(certs_d / "docker.io").exists()
        _Mirror.seen.clear()
        await anyio.to_thread.run_sync(_cri_pull, socket, "docker.io/library/busybox:1.35.0")
        assert _Mirror.seen == []
