"""Container images without a container engine: deterministic layer tars, OCI image config and
manifest, and one archive file per image that both ``ctr images import`` (OCI layout:
``oci-layout``, ``index.json``, ``blobs/sha256/...``) and ``docker load`` (``manifest.json``)
read. Also the reader the tests and the registry client use.

Determinism: entries sorted by path, mtime 0, owner numeric (uid/gid, no names), gzip with
mtime 0 and no file name; the same inputs give the same digests on any machine.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20
MAX_JSON = 4 << 20  # index, manifest and config documents are small; refuse anything bigger


class ImageError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    """One path in a layer. ``kind`` is ``file`` (content from ``source`` or ``data``),
    ``dir`` or ``symlink`` (to ``target``). ``xattrs`` are written as PAX ``SCHILY.xattr.*``
    records (e.g. ``security.capability``), which containerd applies on unpack."""

    path: str
    kind: str = "file"
    source: Path | None = None
    data: bytes | None = None
    target: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def __post_init__(self) -> None:
        p = self.path.strip("/")
        if not p or ".." in p.split("/"):
            raise ImageError(f"layer entry path {self.path!r} is invalid, expected a relative path without '..'")
        object.__setattr__(self, "path", p)
        if self.kind not in ("file", "dir", "symlink"):
            raise ImageError(f"layer entry {p}: kind {self.kind!r} is invalid, expected file, dir or symlink")
        if self.kind == "file" and (self.source is None) == (self.data is None):
            raise ImageError(f"layer entry {p}: a file needs exactly one of source and data")
        if self.kind == "symlink" and not self.target:
            raise ImageError(f"layer entry {p}: a symlink needs a target")


def file(path: str, source: Path, mode: int | None = None, **kw: Any) -> Entry:
    """A regular file copied from ``source`` (mode from the source unless given)."""
    if mode is None:
        mode = stat.S_IMODE(source.stat().st_mode)
    return Entry(path, "file", source=source, mode=mode, **kw)


def tree(root: Path, prefix: str = "") -> list[Entry]:
    """Every file, directory and symlink under ``root`` as entries under ``prefix``, owned by root."""
    out: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            ip = str(Path(prefix) / rel / name)
            if stat.S_ISLNK(st.st_mode):
                out.append(Entry(ip, "symlink", target=os.readlink(p)))
            elif stat.S_ISDIR(st.st_mode):
                out.append(Entry(ip, "dir", mode=stat.S_IMODE(st.st_mode)))
            elif stat.S_ISREG(st.st_mode):
                out.append(Entry(ip, "file", source=p, mode=stat.S_IMODE(st.st_mode)))
        dirnames[:] = [n for n in dirnames if not (Path(dirpath) / n).is_symlink()]
    return out


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        mv = memoryview(b)
        self.sha.update(mv)
        self.size += len(mv)
        self.sink.write(mv)
        return len(mv)


@dataclass(frozen=True)
class Blob:
    digest: str  # "sha256:<hex>"
    size: int
    path: Path


@dataclass(frozen=True)
class Layer:
    blob: Blob  # the gzip-compressed tar
    diff_id: str  # sha256 of the uncompressed tar


def _complete(entries: Iterable[Entry]) -> list[Entry]:
    """Entries sorted by path, later duplicates winning, with missing parent directories added."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        by_path[e.path] = e
    for p in list(by_path):
        parent = Path(p).parent
        while str(parent) != ".":
            by_path.setdefault(str(parent), Entry(str(parent), "dir", mode=0o755))
            parent = parent.parent
    return [by_path[p] for p in sorted(by_path)]


def write_layer(entries: Iterable[Entry], blob_dir: Path) -> Layer:
    """The layer tar of ``entries``, gzip-compressed into ``blob_dir/<hex>``."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=blob_dir, prefix=".layer-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            compressed = _Hashing(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
                plain = _Hashing(gz)  # type: ignore[arg-type]
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for e in _complete(entries):
                        _add(tar, e)
        blob = Blob("sha256:" + compressed.sha.hexdigest(), compressed.size, blob_dir / compressed.sha.hexdigest())
        os.replace(tmp, blob.path)
        return Layer(blob, "sha256:" + plain.sha.hexdigest())
    finally:
        tmp.unlink(missing_ok=True)


def _add(tar: tarfile.TarFile, e: Entry) -> None:
    info = tarfile.TarInfo(e.path + ("/" if e.kind == "dir" else ""))
    info.mtime = 0
    info.mode = e.mode
    info.uid, info.gid = e.uid, e.gid
    info.uname = info.gname = ""
    if e.xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in e.xattrs}
    if e.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif e.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = e.target
        tar.addfile(info)
    elif e.data is not None:
        info.size = len(e.data)
        tar.addfile(info, io.BytesIO(e.data))
    else:
        assert e.source is not None
        info.size = e.source.stat().st_size
        with e.source.open("rb") as f:
            tar.addfile(info, f)


def _json_blob(doc: dict[str, Any], blob_dir: Path) -> Blob:
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    hexd = hashlib.sha256(data).hexdigest()
    path = blob_dir / hexd
    if not path.exists():
        path.write_bytes(data)
    return Blob("sha256:" + hexd, len(data), path)


@dataclass(frozen=True)
class ImageSpec:
    """What an image is: its full reference and its layers (bottom first), plus the
    runtime config (OCI image config ``config`` fields)."""

    ref: str
    layers: tuple[tuple[Entry, ...], ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    user: str = ""
    workdir: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()

    def config(self, diff_ids: list[str]) -> dict[str, Any]:
        cfg: dict[str, Any] = {"Env": list(self.env)}
        if self.entrypoint:
            cfg["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            cfg["Cmd"] = list(self.cmd)
        if self.user:
            cfg["User"] = self.user
        if self.workdir:
            cfg["WorkingDir"] = self.workdir
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        if self.exposed_ports:
            cfg["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        return {
            "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z", "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kos rootfs-build/k8s"}
                        for _ in diff_ids],
        }


def split_ref(ref: str) -> tuple[str, str, str]:
    """``registry.k8s.io/coredns/coredns:v1.11.3`` -> (registry, repository, tag)."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not name or "/" not in name:
        raise ImageError(f"image reference {ref!r} is invalid, expected host/repository:tag")
    host, _, repo = name.partition("/")
    if "." not in host and ":" not in host and host != "localhost":
        raise ImageError(f"image reference {ref!r} is invalid, expected a registry host first (like docker.io)")
    return host, repo, tag


def write_archive(spec: ImageSpec, out: Path, blob_dir: Path) -> str:
    """Build the image's blobs in ``blob_dir`` (shared between images: equal layers are
    stored once) and write the archive ``out``; returns the manifest digest."""
    split_ref(spec.ref)
    layers = [write_layer(entries, blob_dir) for entries in spec.layers]
    config = _json_blob(spec.config([la.diff_id for la in layers]), blob_dir)
    manifest_doc = {
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": la.blob.digest, "size": la.blob.size}
                   for la in layers],
    }
    manifest = _json_blob(manifest_doc, blob_dir)
    tag = spec.ref.rpartition(":")[2]
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [{
        "mediaType": MEDIA_MANIFEST, "digest": manifest.digest, "size": manifest.size,
        "annotations": {ANNOTATION_CONTAINERD_NAME: spec.ref, ANNOTATION_REF_NAME: tag},
    }]}
    docker = [{"Config": f"blobs/sha256/{config.digest[7:]}", "RepoTags": [spec.ref],
               "Layers": [f"blobs/sha256/{la.blob.digest[7:]}" for la in layers]}]
    blobs = [config, manifest] + [la.blob for la in layers]
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def put(name: str, data: bytes | None = None, src: Path | None = None, *, is_dir: bool = False) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname = 0, "", ""
            if is_dir:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif data is not None:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            else:
                assert src is not None
                info.size, info.mode = src.stat().st_size, 0o644
                with src.open("rb") as f:
                    tar.addfile(info, f)

        put("blobs", is_dir=True)
        put("blobs/sha256", is_dir=True)
        seen: set[str] = set()
        for b in blobs:
            if b.digest not in seen:
                seen.add(b.digest)
                put(f"blobs/sha256/{b.digest[7:]}", src=b.path)
        put("index.json", json.dumps(index, sort_keys=True).encode())
        put("manifest.json", json.dumps(docker, sort_keys=True).encode())
        put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    os.replace(tmp, out)
    return manifest.digest


# -- reading -----------------------------------------------------------------------------------

@dataclass
class Archive:
    """An image archive opened for reading: the names, manifest and config it holds."""

    path: Path
    ref: str
    manifest_digest: str
    manifest_bytes: bytes
    manifest: dict[str, Any]
    config: dict[str, Any]
    members: dict[str, tarfile.TarInfo] = field(default_factory=dict)

    def blob_digests(self) -> list[str]:
        """Config first, then the layers (the order a registry push needs before the manifest)."""
        return [self.manifest["config"]["digest"]] + [la["digest"] for la in self.manifest["layers"]]

    @contextlib.contextmanager
    def blob(self, digest: str) -> Iterator[tuple[IO[bytes], int]]:
        """The blob ``digest`` as a readable stream and its size."""
        name = f"blobs/sha256/{digest.removeprefix('sha256:')}"
        with tarfile.open(self.path) as tar:
            try:
                info = tar.getmember(name)
            except KeyError:
                raise ImageError(f"{self.path}: blob {digest} is missing") from None
            f = tar.extractfile(info)
            if f is None:
                raise ImageError(f"{self.path}: blob {digest} is not a regular file")
            yield f, info.size

    def layer_members(self, index: int) -> list[tarfile.TarInfo]:
        """The tar entries of layer ``index`` (0 = bottom)."""
        with self.blob(self.manifest["layers"][index]["digest"]) as (f, _), \
                tarfile.open(fileobj=f, mode="r|gz") as layer:
            return list(layer)

    def read_file(self, path: str) -> bytes | None:
        """The content of ``path`` in the image's merged filesystem (top layer wins)."""
        path = path.strip("/")
        for i in reversed(range(len(self.manifest["layers"]))):
            with self.blob(self.manifest["layers"][i]["digest"]) as (f, _), \
                    tarfile.open(fileobj=f, mode="r|gz") as layer:
                for m in layer:
                    if m.name.rstrip("/") == path and m.isfile():
                        data = layer.extractfile(m)
                        return data.read() if data else b""
        return None


def _read_json(tar: tarfile.TarFile, info: tarfile.TarInfo, what: str) -> tuple[bytes, Any]:
    if info.size > MAX_JSON:
        raise ImageError(f"{what}: {info.size} bytes is too big, expected at most {MAX_JSON}")
    f = tar.extractfile(info)
    if f is None:
        raise ImageError(f"{what}: not a regular file")
    data = f.read()
    try:
        return data, json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{what}: invalid JSON ({exc})") from None


def open_archive(path: Path) -> Archive:
    """Read an archive written by :func:`write_archive` (or any single-image OCI layout tar
    whose index names the image), checking the manifest and config digests."""
    with tarfile.open(path) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        if "index.json" not in members or "oci-layout" not in members:
            raise ImageError(f"{path}: not an OCI image layout archive (no index.json / oci-layout)")
        _, index = _read_json(tar, members["index.json"], f"{path}: index.json")
        mans = index.get("manifests") or []
        if len(mans) != 1:
            raise ImageError(f"{path}: index.json lists {len(mans)} manifests, expected exactly 1")
        desc = mans[0]
        ann = desc.get("annotations") or {}
        ref = ann.get(ANNOTATION_CONTAINERD_NAME) or ann.get(ANNOTATION_REF_NAME) or ""

        def blob(digest: str, what: str) -> tuple[bytes, Any]:
            name = f"blobs/sha256/{digest.removeprefix('sha256:')}"
            if name not in members:
                raise ImageError(f"{path}: {what} blob {digest} is missing")
            data, doc = _read_json(tar, members[name], f"{path}: {what}")
            if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                raise ImageError(f"{path}: {what} blob does not match its digest {digest}")
            return data, doc

        mbytes, manifest = blob(desc["digest"], "manifest")
        _, config = blob(manifest["config"]["digest"], "config")
        return Archive(path, ref, desc["digest"], mbytes, manifest, config, members)
