"""A deterministic ``newc`` cpio writer for initramfs archives.

Entries are written sorted by path, parents before children, with mtime 0, uid/gid 0 and
inode numbers assigned in order, so the same tree always gives the same bytes. The kernel's
initramfs unpacker and GNU cpio both read the format (SVR4 "070701", no CRC).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member. ``path`` is relative (no leading slash). ``data`` is the file
    contents or the symlink target; ``rdev`` is (major, minor) for device nodes."""

    path: str
    mode: int  # full st_mode including the file type bits
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)

    @staticmethod
    def directory(path: str, perm: int = 0o755) -> Entry:
        return Entry(path, stat.S_IFDIR | perm)

    @staticmethod
    def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
        return Entry(path, stat.S_IFREG | perm, data)

    @staticmethod
    def symlink(path: str, target: str) -> Entry:
        return Entry(path, stat.S_IFLNK | 0o777, target.encode())

    @staticmethod
    def chardev(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
        return Entry(path, stat.S_IFCHR | perm, b"", (major, minor))


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, e: Entry, nlink: int, name: bytes) -> bytes:
    fields = [
        ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name) + 1, 0,
    ]
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _normalize(path: str) -> str:
    p = path.strip("/")
    if not p or any(part in ("", ".", "..") for part in p.split("/")):
        raise ValueError(f"cpio entry path {path!r}: expected a relative path without '.', '..' or empty parts")
    return p


def write(entries: Iterable[Entry]) -> bytes:
    """The archive for ``entries``: parents are added as 0755 directories when missing,
    duplicates are an error, order is by path components."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        p = _normalize(e.path)
        if p in by_path:
            raise ValueError(f"cpio entry {p!r} given twice")
        by_path[p] = Entry(p, e.mode, e.data, e.rdev)
    for p in list(by_path):
        parts = p.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in by_path:
                by_path[parent] = Entry.directory(parent)
            elif not stat.S_ISDIR(by_path[parent].mode):
                raise ValueError(f"cpio entry {p!r}: parent {parent!r} is not a directory")
    out = bytearray()
    for ino, p in enumerate(sorted(by_path, key=lambda s: s.split("/")), start=1):
        e = by_path[p]
        name = p.encode()
        nlink = 2 if stat.S_ISDIR(e.mode) else 1
        hdr = _header(ino, e, nlink, name)
        out += hdr + name + b"\0"
        out += _pad4(len(hdr) + len(name) + 1)
        out += e.data + _pad4(len(e.data))
    name = TRAILER.encode()
    hdr = _header(0, Entry(TRAILER, 0), 1, name)
    out += hdr + name + b"\0" + _pad4(len(hdr) + len(name) + 1)
    out += _pad4(len(out))
    return bytes(out)


def tree_entries(root: Path, prefix: str = "") -> list[Entry]:
    """Entries for every file, directory and symlink below ``root`` (permissions kept,
    ownership and times dropped), placed under ``prefix``."""
    result: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / name
            rel = str(Path(prefix) / rel_dir / name).lstrip("/")
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                result.append(Entry.symlink(rel, os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                result.append(Entry.directory(rel, stat.S_IMODE(st.st_mode)))
            elif stat.S_ISREG(st.st_mode):
                result.append(Entry.file(rel, full.read_bytes(), stat.S_IMODE(st.st_mode)))
            else:
                raise ValueError(f"{full}: only files, directories and symlinks can be archived from a tree")
    return result
