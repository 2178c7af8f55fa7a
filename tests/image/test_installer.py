"""The upgrade installer's image references, fetching over real HTTP with checksums, and
finding the system disk from the initramfs's record."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from kos.platform.image import install, installer


@pytest.mark.parametrize(("image", "expected"), [
    ("http://10.5.0.1:8080/rootfs.sqsh", ("http", "http://10.5.0.1:8080/rootfs.sqsh", "")),
    ("file:///var/new.sqsh#sha256=" + "a" * 64, ("file", "/var/new.sqsh", "a" * 64)),
    ("/var/new.sqsh", ("file", "/var/new.sqsh", "")),
])
def test_parse_image(image: str, expected: tuple[str, str, str]) -> None:
    assert installer.parse_image(image) == expected


@pytest.mark.parametrize(("image", "message"), [
    ("ghcr.io/siderolabs/installer:v1.7", "expected an http"),
    ("http:///x", "expected http"),
    ("/x#md5=abc", "expected sha256=<64"),
])
def test_bad_image_references(image: str, message: str) -> None:
    with pytest.raises(installer.ImageRefError, match=message):
        installer.upgrade_sequence(image)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_fetch_over_http_checks_the_digest(tmp_path: Path, http_dir: tuple[Path, str]) -> None:
    root, url = http_dir
    data = b"hsqs" + bytes(range(256)) * 100
    (root / "r.sqsh").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    target = tmp_path / "dl" / "rootfs.sqsh"
    assert installer.fetch(f"{url}/r.sqsh#sha256={digest}", target).read_bytes() == data
    with pytest.raises(install.InstallError, match=f"sha256 {digest}, expected {'0' * 64}"):
        installer.fetch(f"{url}/r.sqsh#sha256={'0' * 64}", target)
    with pytest.raises(install.InstallError, match="download failed: HTTP Error 404"):
        installer.fetch(f"{url}/missing.sqsh", target)
    with pytest.raises(install.InstallError, match="no such file on this node"):
        installer.fetch(str(tmp_path / "nope.sqsh"))


def test_system_disk_from_boot_record(tmp_path: Path) -> None:
    sysblock = tmp_path / "class-block"
    devices = tmp_path / "devices" / "vda"
    (devices / "vda4").mkdir(parents=True)
    sysblock.mkdir()
    (sysblock / "vda").symlink_to(devices)
    (sysblock / "vda4").symlink_to(devices / "vda4")
    info = tmp_path / "kos-boot"
    info.write_text("KOS_SLOT=A\nKOS_META=/dev/vda4\n")
    assert installer.system_disk(info, sysblock) == "/dev/vda"
    info.write_text("KOS_SLOT=A\n")
    with pytest.raises(install.InstallError, match="no KOS_META"):
        installer.system_disk(info, sysblock)
