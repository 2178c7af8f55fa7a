"""Extracts the uncompressed ELF ``vmlinux`` from a compressed x86 ``bzImage``.

QEMU boots an ELF vmlinux through the PVH entry point without running the in-kernel
decompressor, which under TCG saves several seconds per boot. Debian compresses its kernel
with xz: the payload is the one xz stream inside the bzImage whose decompressed bytes start
with the ELF magic. (Same idea as the kernel's scripts/extract-vmlinux, written for Python's
lzma module.)
"""

from __future__ import annotations

import lzma

XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"


class ExtractError(ValueError):
    pass


def extract(bzimage: bytes) -> bytes:
    """The ELF vmlinux inside ``bzimage``; ExtractError when there is no xz-compressed ELF."""
    start = 0
    while (pos := bzimage.find(XZ_MAGIC, start)) >= 0:
        start = pos + 1
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            out = dec.decompress(bzimage[pos:])
        except lzma.LZMAError:
            continue
        if out.startswith(ELF_MAGIC):
            return out
    raise ExtractError("no xz-compressed ELF kernel found in the image (expected a Debian x86 bzImage)")
