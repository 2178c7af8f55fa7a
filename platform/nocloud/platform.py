"""The nocloud platform (cloud-init's NoCloud data source).

Sources, in order: the SMBIOS system serial ``ds=nocloud;s=URL/`` (``user-data`` is fetched
from ``URL/user-data``; ``ds=nocloud-net`` too), or the filesystem labelled ``cidata``
(``CIDATA``): mounted read-only for a moment and its ``user-data`` file read; ``meta-data``
``local-hostname`` gives the hostname.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import yaml

from kos.platform.linux import syscalls as sc
from kos.platform.metal.platform import fetch

SERIAL = Path("/sys/class/dmi/id/product_serial")


def parse_serial(serial: str) -> str | None:
    """``ds=nocloud;s=http://10.0.0.1/c/`` -> ``http://10.0.0.1/c/`` (None if not nocloud)."""
    parts = dict(p.partition("=")[::2] for p in serial.strip().split(";") if p)
    if parts.get("ds") not in ("nocloud", "nocloud-net"):
        return None
    url = parts.get("s") or parts.get("seedfrom")
    if not url:
        return None
    return url if url.endswith("/") else url + "/"


def find_cidata() -> str | None:
    for label in ("cidata", "CIDATA"):
        proc = subprocess.run(["blkid", "-L", label], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return None


def read_cidata(device: str) -> tuple[bytes | None, dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="kos-cidata-") as mnt:
        fstype = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", device], capture_output=True,
                                text=True).stdout.strip()
        sc.mount(device, mnt, fstype or "iso9660", sc.MS_RDONLY)
        try:
            ud = Path(mnt, "user-data")
            md = Path(mnt, "meta-data")
            user = ud.read_bytes() if ud.exists() else None
            meta = yaml.safe_load(md.read_text()) if md.exists() else {}
        finally:
            sc.umount(mnt)
    return user, meta if isinstance(meta, dict) else {}


class NoCloudPlatform:
    name = "nocloud"
    mode = "cloud"

    def __init__(self, serial_path: Path = SERIAL) -> None:
        self.serial_path = serial_path
        self._meta: dict[str, object] = {}

    def hostname(self) -> str | None:
        h = self._meta.get("local-hostname")
        return str(h) if h else None

    def config(self) -> bytes | None:
        try:
            serial = self.serial_path.read_text()
        except OSError:
            serial = ""
        url = parse_serial(serial)
        if url is not None:
            return fetch(url + "user-data")
        device = find_cidata()
        if device is None:
            return None
        try:
            user, self._meta = read_cidata(device)
        except OSError as exc:
            raise ValueError(f"cidata volume {device}: {exc}") from None
        return user


PLATFORM_CLASS = NoCloudPlatform
