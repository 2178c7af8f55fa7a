"""vmlinux extraction from an xz-compressed bzImage."""

from __future__ import annotations

import lzma
import os

import pytest

from kos.platform.image import vmlinux


def test_finds_the_elf_stream_after_decoys() -> None:
    elf = b"\x7fELF\x02\x01\x01" + os.urandom(20000)
    decoy = lzma.compress(b"not a kernel", format=lzma.FORMAT_XZ)
    image = b"MZ" + os.urandom(3000) + vmlinux.XZ_MAGIC + b"broken" + decoy + os.urandom(100) \
        + lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32) + b"\0" * 512
    assert vmlinux.extract(image) == elf


def test_no_kernel_is_an_error() -> None:
    with pytest.raises(vmlinux.ExtractError, match="no xz-compressed ELF"):
        vmlinux.extract(b"MZ" + lzma.compress(b"text", format=lzma.FORMAT_XZ))
