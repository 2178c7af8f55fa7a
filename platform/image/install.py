"""Installing and upgrading a kos system disk: write a rootfs squashfs into a BOOT slot and
record the slot choice in META.

Works on a whole disk (a block device or a raw image file): partitions are located by GPT
label through ``kos.platform.block.probe``, and data is written at their offsets on the disk
itself, so no partition device nodes are needed (this host's kernel has no GPT parser).

* ``install(disk, rootfs)``: a disk with the kos layout gets the rootfs in BOOT-A and a fresh
  META (``active=A``); the layout itself is written by ``layout.write_image``.
* ``upgrade(disk, rootfs, tries)``: writes the inactive slot, verifies it by reading it back,
  then stages it in META (``active`` = new, ``fallback`` = old, ``tries``); the next boot
  uses it and the initramfs rolls back after ``tries`` unconfirmed boots.
* ``rollback(disk)``: boot the other slot next, if it is a previous good slot (see
  ``rollback_target``). ``status(disk)``: the BootState.

Which slots are good is recorded in META as ``good-a=1``/``good-b=1``: ``upgrade`` marks the
slot it upgrades from (it was running) and clears the mark of the slot it overwrites; the
image's boot confirmer (``kos.platform.image.boot.confirm_boot``) marks the slot it confirms.
A slot whose upgrade never confirmed (the initramfs rolled back from it) stays unmarked.

Everything here is blocking (call it through ``anyio.to_thread``). A bad rootfs (not a
squashfs, too big for the slot) is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from kos.platform.block import probe
from kos.platform.image import meta
from kos.platform.image.layout import SLOT_LABELS

CHUNK = 4 << 20
SQUASHFS_MAGIC = b"hsqs"


class InstallError(ValueError):
    pass


@dataclass(frozen=True)
class Located:
    disk: str
    meta_offset: int
    slots: dict[str, tuple[int, int]]  # slot -> (offset, size)


def locate(disk: str) -> Located:
    """META and BOOT-A/B on ``disk``; InstallError naming what is missing."""
    result = probe.probe_path(disk)
    if result.table is None or result.table.type != "gpt":
        raise InstallError(f"{disk}: no GPT partition table (expected a disk with the kos layout)")
    meta_part = result.table.by_label("META")
    if meta_part is None:
        raise InstallError(f"{disk}: no partition labelled META")
    slots: dict[str, tuple[int, int]] = {}
    for slot, label in SLOT_LABELS.items():
        p = result.table.by_label(label)
        if p is None:
            raise InstallError(f"{disk}: no partition labelled {label}")
        slots[slot] = (p.start, p.size)
    return Located(disk, meta_part.start, slots)


def check_rootfs(rootfs: Path, slot_size: int) -> int:
    """The rootfs size; InstallError when it is not a squashfs or does not fit."""
    try:
        size = rootfs.stat().st_size
        with open(rootfs, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InstallError(f"image {rootfs}: {exc.strerror}") from None
    if magic != SQUASHFS_MAGIC:
        raise InstallError(f"image {rootfs}: not a squashfs rootfs (magic {magic!r}, expected {SQUASHFS_MAGIC!r})")
    if size > slot_size:
        raise InstallError(f"image {rootfs}: {size} bytes, the boot slot holds {slot_size}")
    return size


def write_slot(loc: Located, slot: str, rootfs: Path) -> str:
    """Copy ``rootfs`` into ``slot``, fsync, read back; returns the sha256 written."""
    offset, size = loc.slots[slot]
    length = check_rootfs(rootfs, size)
    h = hashlib.sha256()
    fd = os.open(loc.disk, os.O_WRONLY | os.O_CLOEXEC)
    try:
        with open(rootfs, "rb") as src:
            pos = offset
            while chunk := src.read(CHUNK):
                h.update(chunk)
                os.pwrite(fd, chunk, pos)
                pos += len(chunk)
        # a stale superblock from a longer image must not survive past the new one's end
        if length + 4096 <= size:
            os.pwrite(fd, b"\0" * 4096, offset + length)
        os.fsync(fd)
    finally:
        os.close(fd)
    back = hashlib.sha256()
    fd = os.open(loc.disk, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        pos, left = offset, length
        while left:
            chunk = os.pread(fd, min(CHUNK, left), pos)
            if not chunk:
                break
            back.update(chunk)
            pos += len(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if back.hexdigest() != h.hexdigest():
        raise InstallError(f"{loc.disk}: BOOT-{slot} reads back differently from {rootfs} (write failed)")
    return h.hexdigest()


def status(disk: str) -> meta.BootState:
    loc = locate(disk)
    return meta.BootState.from_meta(meta.read(disk, loc.meta_offset))


def install(disk: str, rootfs: Path) -> meta.BootState:
    """A first install: the rootfs into BOOT-A, META reset to boot A."""
    loc = locate(disk)
    write_slot(loc, "A", rootfs)
    state = meta.BootState("A")
    meta.write(disk, state.to_meta({}), loc.meta_offset)
    return state


def upgrade(disk: str, rootfs: Path, tries: int = meta.DEFAULT_TRIES) -> meta.BootState:
    """Write the inactive slot and stage it; META is only changed after the slot verified."""
    if tries < 1:
        raise InstallError(f"tries {tries}: expected at least 1")
    loc = locate(disk)
    values = meta.read(disk, loc.meta_offset)
    current = meta.BootState.from_meta(values)
    target = meta.other(current.active)
    digest = write_slot(loc, target, rootfs)
    staged = meta.stage_upgrade(meta.confirm(current), tries)
    out = staged.to_meta(values)
    out[f"sha256-{target.lower()}"] = digest
    out[good_key(current.active)] = "1"
    out.pop(good_key(target), None)
    meta.write(disk, out, loc.meta_offset)
    return staged


def good_key(slot: str) -> str:
    return f"good-{slot.lower()}"


class NoPreviousSlotError(InstallError):
    """The other slot holds no previous good system: nothing to roll back to."""


def rollback_target(disk: str) -> tuple[meta.BootState, str]:
    """(current state, the slot a manual rollback boots): the other slot, when it is the
    unconfirmed upgrade's fallback or marked good in META and still holds a squashfs;
    NoPreviousSlotError otherwise (never upgraded, or its upgrade rolled back)."""
    loc = locate(disk)
    values = meta.read(disk, loc.meta_offset)
    state = meta.BootState.from_meta(values)
    target = meta.other(state.active)
    if state.fallback != target and values.get(good_key(target)) != "1":
        raise NoPreviousSlotError(
            f"{disk}: no previous good slot to roll back to: BOOT-{target} never ran a confirmed system "
            f"(the node was never upgraded, or its upgrade to BOOT-{target} rolled back); "
            f"slot {state.active} stays active")
    fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    try:
        magic = os.pread(fd, 4, loc.slots[target][0])
    finally:
        os.close(fd)
    if magic != SQUASHFS_MAGIC:
        raise NoPreviousSlotError(f"{disk}: BOOT-{target} holds no squashfs rootfs; slot {state.active} stays active")
    return state, target


def rollback(disk: str) -> meta.BootState:
    """Boot the previous good slot next (NoPreviousSlotError when there is none)."""
    loc = locate(disk)
    rollback_target(disk)
    values = meta.read(disk, loc.meta_offset)
    state = meta.rollback(meta.BootState.from_meta(values))
    meta.write(disk, state.to_meta(values), loc.meta_offset)
    return state
