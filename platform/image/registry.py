"""A local image registry for air-gapped clusters: the client half of the registry HTTP API v2
(push an image archive: blobs then manifest; read a manifest or blob back) and the server half
as Debian's ``docker-registry`` (the CNCF distribution registry) run with a generated config.

The registry holds every image under its upstream repository path without the host
(``registry.k8s.io/kube-apiserver:v1.32.13`` -> ``kube-apiserver:v1.32.13``), which is the path
containerd asks a mirror for when ``machine.registries.mirrors`` names it for that host.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from kos.platform.image import oci

MAX_ERROR = 500
MAX_MANIFEST = 4 << 20
ACCEPT = ", ".join([oci.MEDIA_MANIFEST, oci.MEDIA_INDEX,
                    "application/vnd.docker.distribution.manifest.v2+json"])
CHUNK = 1 << 20


class RegistryError(RuntimeError):
    pass


def mirror_path(ref: str) -> tuple[str, str, str]:
    """``registry.k8s.io/coredns/coredns:v1.11.3`` -> (``registry.k8s.io``, ``coredns/coredns``,
    ``v1.11.3``): the upstream host, and the repository and tag inside a mirror."""
    return oci.split_ref(ref)


@dataclass(frozen=True)
class Client:
    """A plain-HTTP registry at ``endpoint`` (``host:port``)."""

    endpoint: str
    timeout: float = 60.0

    def _conn(self) -> http.client.HTTPConnection:
        host, _, port = self.endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise RegistryError(f"registry endpoint {self.endpoint!r} is invalid, expected host:port")
        return http.client.HTTPConnection(host, int(port), timeout=self.timeout)

    def _request(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None,
                 expect: tuple[int, ...] = (200,), limit: int = MAX_ERROR) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=headers or {})  # type: ignore[arg-type]
            resp = conn.getresponse()
            data = resp.read(limit + 1) if method != "HEAD" else b""
        except OSError as exc:
            raise RegistryError(f"{method} http://{self.endpoint}{path}: {exc}") from None
        finally:
            conn.close()
        if resp.status not in expect:
            text = data[:MAX_ERROR].decode(errors="replace")
            raise RegistryError(f"{method} http://{self.endpoint}{path}: HTTP {resp.status}, expected "
                                f"{' or '.join(map(str, expect))}: {text}")
        return resp, data

    def ping(self) -> bool:
        try:
            self._request("GET", "/v2/")
            return True
        except RegistryError:
            return False

    def has_blob(self, repo: str, digest: str) -> bool:
        resp, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", expect=(200, 404))
        return resp.status == 200

    def put_blob(self, repo: str, digest: str, stream: object, size: int) -> None:
        """Monolithic upload: POST for an upload URL, then PUT the bytes with the digest."""
        resp, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"},
                                expect=(202,))
        location = resp.getheader("Location") or ""
        url = urllib.parse.urlsplit(location)
        if url.netloc and url.netloc != self.endpoint:
            raise RegistryError(f"registry {self.endpoint}: upload location {location[:200]!r} is on another host")
        query = (url.query + "&" if url.query else "") + urllib.parse.urlencode({"digest": digest})
        self._request("PUT", f"{url.path}?{query}", body=stream,
                      headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                      expect=(201,))

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str:
        resp, _ = self._request("PUT", f"/v2/{repo}/manifests/{tag}", body=data,
                                headers={"Content-Type": media_type, "Content-Length": str(len(data))},
                                expect=(201,))
        return resp.getheader("Docker-Content-Digest") or "sha256:" + hashlib.sha256(data).hexdigest()

    def get_manifest(self, repo: str, reference: str) -> tuple[str, bytes]:
        """(media type, bytes) of a manifest, its digest checked when ``reference`` is one."""
        resp, data = self._request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT},
                                   limit=MAX_MANIFEST)
        if len(data) > MAX_MANIFEST:
            raise RegistryError(f"manifest {repo}:{reference}: more than {MAX_MANIFEST} bytes")
        if reference.startswith("sha256:") and "sha256:" + hashlib.sha256(data).hexdigest() != reference:
            raise RegistryError(f"manifest {repo}@{reference}: content does not match the digest")
        return resp.getheader("Content-Type") or "", data

    def blob_digest(self, repo: str, digest: str) -> str:
        """Download a blob and return the sha256 of what came (to compare with ``digest``)."""
        conn = self._conn()
        try:
            conn.request("GET", f"/v2/{repo}/blobs/{digest}")
            resp = conn.getresponse()
            if resp.status in (301, 302, 307):
                raise RegistryError(f"blob {repo}@{digest}: redirected to {resp.getheader('Location', '')[:200]}")
            if resp.status != 200:
                raise RegistryError(f"GET blob {repo}@{digest}: HTTP {resp.status}")
            h = hashlib.sha256()
            while chunk := resp.read(CHUNK):
                h.update(chunk)
            return "sha256:" + h.hexdigest()
        finally:
            conn.close()


def push_archive(client: Client, archive: Path) -> tuple[str, str]:
    """Push the image archive to the registry under its mirror path; returns (``repo:tag``,
    manifest digest). Blobs the registry already has are skipped."""
    a = oci.open_archive(archive)
    _, repo, tag = mirror_path(a.ref)
    for digest in a.blob_digests():
        if client.has_blob(repo, digest):
            continue
        with a.blob(digest) as (f, size):
            client.put_blob(repo, digest, f, size)
    digest = client.put_manifest(repo, tag, a.manifest_bytes, a.manifest.get("mediaType", oci.MEDIA_MANIFEST))
    if digest != a.manifest_digest:
        raise RegistryError(f"{a.ref}: the registry stored manifest {digest}, expected {a.manifest_digest}")
    return f"{repo}:{tag}", digest


# -- the server: Debian's docker-registry --------------------------------------------------------

def server_config(storage: Path, addr: str) -> str:
    """A docker-registry config: filesystem storage under ``storage``, plain HTTP on ``addr``,
    no auth (the provisioner's registry listens on the cluster's bridge only)."""
    return json.dumps({
        "version": 0.1,
        "log": {"level": "warn", "fields": {"service": "registry"}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": addr, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }, indent=2)  # JSON is YAML


class Server:
    """``docker-registry serve CONFIG`` as a child process (blocking helpers)."""

    def __init__(self, state: Path, addr: str, binary: str = "docker-registry") -> None:
        self.state = state
        self.addr = addr
        self.binary = shutil.which(binary) or binary
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Client:
        self.state.mkdir(parents=True, exist_ok=True)
        cfg = self.state / "config.yml"
        cfg.write_text(server_config(self.state / "storage", self.addr))
        log = (self.state / "registry.log").open("ab")
        try:
            self.proc = subprocess.Popen([self.binary, "serve", str(cfg)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        client = Client(self.addr)
        deadline = time.monotonic() + timeout
        while not client.ping():
            if self.proc.poll() is not None:
                tail = (self.state / "registry.log").read_text(errors="replace")[-MAX_ERROR:]
                raise RegistryError(f"docker-registry exited ({self.proc.returncode}): {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RegistryError(f"docker-registry on {self.addr}: not answering after {timeout:.0f} s")
            time.sleep(0.1)
        return client

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
