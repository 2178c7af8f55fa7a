"""GRUB's environment block on the system disk: where ``machine.install.extraKernelArgs`` reach
the boot entries without rewriting the boot loader.

The EFI partition's FAT holds ``/grub/grubenv``, a GRUB environment block (1024 bytes:
``# GRUB Environment Block``, ``name=value`` lines, ``#`` padding); ``grub.cfg`` runs
``load_env`` and appends ``${kos_extra_args}`` to every kernel command line. The node changes the
block in place, as ``grub-editenv`` does: the file keeps its size and clusters, so the FAT stays
consistent; only the block's bytes change (found by scanning the partition's sectors for a
valid block). The new arguments are in effect from the next boot.

``encode(vars)`` / ``decode(block)`` / ``locate(fd, start, size)`` /
``write_vars(disk, vars)`` (blocking; ``disk`` a block device or an image file with the kos
layout).
"""

from __future__ import annotations

import os
import re

from kos.platform.image import layout

SIZE = 1024
HEADER = b"# GRUB Environment Block\n"
EXTRA_ARGS = "kos_extra_args"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK = 1 << 20


class BootEnvError(RuntimeError):
    pass


def encode(variables: dict[str, str]) -> bytes:
    body = HEADER + b"".join(f"{k}={v}\n".encode() for k, v in variables.items())
    for k, v in variables.items():
        if not _NAME.match(k) or "\n" in v or "\\" in v:
            raise BootEnvError(f"{k}={v!r}: names are identifiers, values one line without backslashes")
    if len(body) > SIZE:
        raise BootEnvError(f"the variables need {len(body)} bytes, the GRUB environment block holds {SIZE}")
    return body + b"#" * (SIZE - len(body))


def empty() -> bytes:
    return encode({})


def decode(block: bytes) -> dict[str, str] | None:
    """The variables of a valid block, or None."""
    if len(block) != SIZE or not block.startswith(HEADER):
        return None
    body = block[len(HEADER):]
    end = len(body.rstrip(b"#"))
    if end and body[end - 1:end] != b"\n":
        return None
    out: dict[str, str] = {}
    for line in body[:end].decode(errors="replace").splitlines():
        name, eq, value = line.partition("=")
        if not eq or not _NAME.match(name):
            return None
        out[name] = value
    return out


def locate(fd: int, start: int, size: int) -> int:
    """The byte offset (from the start of ``fd``) of the environment block in the partition at
    ``start``..``start+size`` (sector-aligned, as FAT data is)."""
    off = 0
    while off < size:
        data = os.pread(fd, min(_CHUNK, size - off) + SIZE, start + off)
        i = data.find(HEADER)
        while i != -1 and i < _CHUNK:
            if i % layout.SECTOR == 0 and decode(data[i:i + SIZE]) is not None:
                return start + off + i
            i = data.find(HEADER, i + 1)
        off += _CHUNK
    raise BootEnvError("no GRUB environment block in the EFI partition (an image built before kos wrote one)")


def _size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


def read_vars(disk: str) -> dict[str, str]:
    fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    try:
        efi = layout.find(layout.plan(_size(fd)), "EFI")
        at = locate(fd, efi.start, efi.size)
        return decode(os.pread(fd, SIZE, at)) or {}
    finally:
        os.close(fd)


def write_vars(disk: str, variables: dict[str, str]) -> bool:
    """Replace the block's variables; returns whether anything changed (durable when it returns)."""
    block = encode(variables)
    fd = os.open(disk, os.O_RDWR | os.O_CLOEXEC)
    try:
        efi = layout.find(layout.plan(_size(fd)), "EFI")
        at = locate(fd, efi.start, efi.size)
        if os.pread(fd, SIZE, at) == block:
            return False
        os.pwrite(fd, block, at)
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
