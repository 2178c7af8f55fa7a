"""A small async Kubernetes API client: server-side apply over mutual TLS.

Only what the manifest applier needs, on anyio TLS streams with HTTP/1.1
(``Connection: close``, one request per connection):

* ``discover(api_version)`` - the resource list of a group/version (kind -> plural, namespaced),
  cached per client;
* ``apply(obj)`` - ``PATCH .../<plural>/<name>?fieldManager=kos&force=true`` with
  ``Content-Type: application/apply-patch+yaml`` (server-side apply);
* ``get(path)`` - a GET returning parsed JSON (``/readyz``, ``/version``).

Authentication is the client certificate (an admin cert in ``system:masters``); the server
is verified against the Kubernetes CA.
"""

from __future__ import annotations

import json
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import yaml

FIELD_MANAGER = "kos"


class APIError(Exception):
    """The API server answered with an error status (``status`` is the HTTP code)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class APIResource:
    name: str
    namespaced: bool


def tls_context(ca_pem: str, cert_pem: str, key_pem: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as d:  # load_cert_chain reads files only
        cert, key = Path(d, "c.pem"), Path(d, "k.pem")
        cert.write_text(cert_pem)
        key.touch(mode=0o600)
        key.write_text(key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx


def _decode_chunked(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            return bytes(out)
        out += body[pos:pos + size]
        pos += size + 2


class KubeClient:
    def __init__(self, server: str, ssl_context: ssl.SSLContext, *, timeout: float = 10.0) -> None:
        u = urlsplit(server)
        if u.scheme != "https" or not u.hostname:
            raise ValueError(f"API server URL {server!r}: expected https://host:port")
        self.host = u.hostname
        self.port = u.port or 443
        self.ctx = ssl_context
        self.timeout = timeout
        self._resources: dict[str, dict[str, APIResource]] = {}

    async def request(self, method: str, path: str, *, body: bytes = b"",
                      content_type: str = "application/json") -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "User-Agent: kos",
                "Accept: application/json", "Connection: close"]
        if body or method in ("PATCH", "POST", "PUT"):
            head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        with anyio.fail_after(self.timeout):
            stream = await anyio.connect_tcp(self.host, self.port, tls=True, ssl_context=self.ctx,
                                             tls_standard_compatible=False)
            async with stream:
                await stream.send(raw)
                chunks = []
                try:
                    while True:
                        chunks.append(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
        data = b"".join(chunks)
        if not data:
            raise APIError(0, f"{self.host}:{self.port} closed the connection without a response "
                              "(client certificate refused?)")
        header, _, payload = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise APIError(0, f"malformed HTTP response from {self.host}:{self.port}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            payload = _decode_chunked(payload)
        return int(parts[1]), payload

    async def get(self, path: str) -> Any:
        status, payload = await self.request("GET", path)
        if status >= 300:
            raise APIError(status, _message(payload))
        try:
            return json.loads(payload)
        except ValueError:
            return payload.decode(errors="replace")

    async def discover(self, api_version: str) -> dict[str, APIResource]:
        if api_version not in self._resources:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            doc = await self.get(path)
            found: dict[str, APIResource] = {}
            for r in doc.get("resources", []):
                if "/" not in r["name"]:
                    found[r["kind"]] = APIResource(r["name"], bool(r.get("namespaced")))
            self._resources[api_version] = found
        return self._resources[api_version]

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, kind = obj["apiVersion"], obj["kind"]
        name = obj["metadata"]["name"]
        res = (await self.discover(api_version)).get(kind)
        if res is None:
            raise APIError(404, f"{api_version} {kind} is not served by the API server")
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if res.namespaced:
            ns = obj["metadata"].get("namespace") or "default"
            base += f"/namespaces/{quote(ns)}"
        path = f"{base}/{res.name}/{quote(name)}?fieldManager={FIELD_MANAGER}&force=true"
        body = yaml.safe_dump(obj, sort_keys=False).encode()
        status, payload = await self.request("PATCH", path, body=body, content_type="application/apply-patch+yaml")
        if status >= 300:
            raise APIError(status, f"apply {kind}/{name}: {_message(payload)}")
        result: dict[str, Any] = json.loads(payload)
        return result


def _message(payload: bytes) -> str:
    try:
        doc = json.loads(payload)
        return str(doc.get("message", doc))
    except ValueError:
        return payload.decode(errors="replace")[:200]
