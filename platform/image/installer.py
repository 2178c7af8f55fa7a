"""The node side of ``Upgrade``: ``upgrade_sequence(image, ...)`` gives machined's sequencer
the phases (``(phase name, ((task name, async fn), ...))`` pairs, which machined turns into
its ``Phase``s) that fetch a rootfs image and write it into the inactive BOOT slot (machined then
reboots into it; see ``kos.machined.node`` and ``install.upgrade``).

``image`` is where the new rootfs squashfs comes from:

* ``http://host[:port]/path`` or ``https://...`` (fetched with urllib, 5 minutes at most);
* ``file:///path`` or ``/path`` on the node.

A ``#sha256=<64 hex>`` suffix is verified before anything is written. The system disk is the
one holding the META partition the initramfs booted with (``/run/kos-boot``). Nothing on
the disk changes unless the image is a squashfs that fits the slot and reads back intact;
META is written last. ``preserve`` is accepted for compatibility (an upgrade never touches
STATE or EPHEMERAL), ``stage`` and ``force`` change nothing: the slot is always staged for
the next boot, which gets ``meta.DEFAULT_TRIES`` tries to come up.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import structlog

from kos.platform.image import install, meta

log = structlog.get_logger("kos.platform.image.installer")
BOOT_INFO = Path("/run/kos-boot")
DOWNLOAD = Path("/var/lib/kos/upgrade/rootfs.sqsh")
FETCH_TIMEOUT = 300.0
SHA_RE = re.compile(r"^sha256=([0-9a-f]{64})$")


class ImageRefError(ValueError):
    pass


def parse_image(image: str) -> tuple[str, str, str]:
    """(scheme, location, expected sha256 or '') of an image reference."""
    ref, _, fragment = image.partition("#")
    digest = ""
    if fragment:
        m = SHA_RE.match(fragment)
        if not m:
            raise ImageRefError(f"image {image!r}: fragment {fragment!r}: expected sha256=<64 lowercase hex digits>")
        digest = m.group(1)
    parsed = urllib.parse.urlparse(ref)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise ImageRefError(f"image {image!r}: expected http(s)://host/path")
        return parsed.scheme, ref, digest
    if parsed.scheme == "file":
        return "file", parsed.path, digest
    if parsed.scheme == "" and ref.startswith("/"):
        return "file", ref, digest
    raise ImageRefError(f"image {image!r}: expected an http(s):// URL, file:///path or /path of a rootfs squashfs")


def system_disk(boot_info: Path = BOOT_INFO, sys_block: Path = Path("/sys/class/block")) -> str:
    """/dev/<disk> holding the META partition the initramfs used."""
    info: dict[str, str] = {}
    if boot_info.exists():
        for line in boot_info.read_text().splitlines():
            k, _, v = line.partition("=")
            info[k] = v
    meta_dev = info.get("KOS_META", "")
    if not meta_dev:
        raise install.InstallError(f"{boot_info}: no KOS_META (the node did not boot from a kos system disk)")
    part = Path(meta_dev).name
    parent = (sys_block / part).resolve().parent.name
    if not (sys_block / parent).exists():
        raise install.InstallError(f"cannot find the disk of {meta_dev}")
    return f"/dev/{parent}"


def fetch(image: str, target: Path = DOWNLOAD) -> Path:
    """The image as a local file (downloaded into ``target`` for URLs), checksum verified."""
    scheme, location, digest = parse_image(image)
    if scheme == "file":
        path = Path(location)
        if not path.is_file():
            raise install.InstallError(f"image {location}: no such file on this node")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(location, timeout=30) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise install.InstallError(f"image {location}: download failed: {exc}") from None
        tmp.replace(target)
        path = target
    if digest:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != digest:
            raise install.InstallError(f"image {image}: sha256 {h.hexdigest()}, expected {digest}")
    return path


PhaseSteps = tuple[str, tuple[tuple[str, Callable[[], Awaitable[None]]], ...]]
"""A sequencer phase as plain data: its name and its (task name, async task) pairs."""


def upgrade_sequence(image: str, *, preserve: bool = True, stage: bool = False,
                     force: bool = False) -> tuple[PhaseSteps, ...]:
    """The sequencer phases of an upgrade (``image`` is checked now: a bad reference raises
    ImageRefError before anything starts)."""
    parse_image(image)
    fetched: list[Path] = []

    async def fetch_image() -> None:
        fetched.append(await anyio.to_thread.run_sync(fetch, image))
        log.info("upgrade image fetched", image=image, path=str(fetched[0]))

    def _install() -> tuple[str, meta.BootState]:
        disk = system_disk()
        state = install.upgrade(disk, fetched[0])
        if fetched[0] == DOWNLOAD:
            DOWNLOAD.unlink(missing_ok=True)
        return disk, state

    async def write_slot() -> None:
        disk, state = await anyio.to_thread.run_sync(_install)
        log.info("upgrade written", disk=disk, active=state.active, fallback=state.fallback, tries=state.tries)

    return (
        ("fetchImage", (("fetchImage", fetch_image),)),
        ("install", (("writeBootSlot", write_slot),)),
    )


def rollback_check() -> tuple[meta.BootState, str]:
    """(this node's boot state, the slot a rollback would boot); install.NoPreviousSlotError
    when there is no previous good slot, InstallError when the node has no system disk
    (blocking)."""
    return install.rollback_target(system_disk())


def rollback_now() -> meta.BootState:
    """Flip the next boot to the other slot on this node's system disk (blocking)."""
    return install.rollback(system_disk())

