"""Hand-built OCI image archives (no registry is reachable): a single-layer image from files.

``build_oci_archive`` writes an ``oci-layout`` tarball (index.json, blobs/sha256/...) whose
manifest carries the ``io.containerd.image.name`` annotation, so ``ctr images import`` names
the image. Used to ship e.g. a static busybox image with the OS image.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _blob(tar: tarfile.TarFile, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _add(tar, f"blobs/sha256/{digest[7:]}", data)
    return {"digest": digest, "size": len(data)}


def build_oci_archive(
    out: Path,
    name: str,
    files: Mapping[str, tuple[bytes, int]],
    *,
    symlinks: Mapping[str, str] | None = None,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
) -> None:
    """Write an OCI archive of one layer holding ``files`` (path -> (content, mode)) and
    ``symlinks`` (path -> target), for linux/amd64."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer:
        dirs = sorted({str(Path(p).parent) for p in [*files, *(symlinks or {})]} - {".", "/"})
        for d in dirs:
            info = tarfile.TarInfo(d.lstrip("/"))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            layer.addfile(info)
        for path, (data, mode) in sorted(files.items()):
            _add(layer, path.lstrip("/"), data, mode)
        for path, target in sorted((symlinks or {}).items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            layer.addfile(info)
    layer_data = layer_buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_data).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd or [], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(out, "w") as tar:
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(tar, layer_data)}
        config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **_blob(tar, json.dumps(config).encode())}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer_desc]}
        manifest_desc = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_blob(tar, json.dumps(manifest).encode()),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
        }
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [manifest_desc]}
        _add(tar, "index.json", json.dumps(index).encode())
