"""META: a tiny key/value store on its own raw partition, and the A/B boot-slot state
machine kept in it.

On-disk format (the first 4 KiB block of the partition, the rest unused)::

    KOSMETA1\\n
    key=value\\n      (keys [a-z0-9_-]+, values printable ASCII without '=' or newline)
    ...
    end\\n
    NUL padding

It is plain text on purpose: the initramfs reads and updates it with busybox ``sh`` (see
``rootfs-build/initramfs/bootslot.sh``, which implements ``next_boot`` and is tested against
this module). A block without the header or the ``end`` line reads as empty (first boot).

Boot slots: ``active`` is the slot (``A`` or ``B``) to boot. An upgrade writes the other slot
and sets ``active`` to it, ``fallback`` to the old one and ``tries`` to the number of boots
the new slot gets to become healthy. Each boot with a ``fallback`` spends one try; a boot
with no tries left rolls back (``active=fallback``). machined calls ``confirm`` once the node
is healthy, which drops ``fallback``/``tries``. ``rollback`` flips to the other slot by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

HEADER = "KOSMETA1"
BLOCK = 4096
SLOTS = ("A", "B")
KEY_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
VALUE_RE = re.compile(r"^[\x20-\x3c\x3e-\x7e]{0,200}$")  # printable, no '='
DEFAULT_TRIES = 1  # the new slot gets one boot to confirm itself


class MetaError(ValueError):
    pass


def encode(values: dict[str, str]) -> bytes:
    lines = [HEADER]
    body = []
    for k, v in values.items():
        if not KEY_RE.match(k):
            raise MetaError(f"META key {k!r}: expected 1-32 characters of [a-z0-9_-]")
        if not VALUE_RE.match(v):
            raise MetaError(f"META value for {k!r}: {v!r}: expected at most 200 printable ASCII characters, no '='")
        body.append(f"{k}={v}")
    lines += sorted(body)  # sorted as lines (byte order), like `sort` in the initramfs
    lines.append("end")
    raw = ("\n".join(lines) + "\n").encode()
    if len(raw) > BLOCK:
        raise MetaError(f"META: {len(raw)} bytes, at most {BLOCK} fit")
    return raw.ljust(BLOCK, b"\0")


def decode(block: bytes) -> dict[str, str]:
    """The values in ``block``; {} when it holds no complete META (blank or torn write)."""
    text = block.replace(b"\0", b"").decode("ascii", errors="replace")
    lines = text.split("\n")
    if not lines or lines[0] != HEADER or "end" not in lines:
        return {}
    values: dict[str, str] = {}
    for line in lines[1 : lines.index("end")]:
        k, sep, v = line.partition("=")
        if sep and KEY_RE.match(k) and VALUE_RE.match(v):
            values[k] = v
    return values


@dataclass(frozen=True)
class BootState:
    active: str = "A"
    fallback: str = ""
    tries: int = 0

    @staticmethod
    def from_meta(values: dict[str, str]) -> BootState:
        active = values.get("active", "A")
        if active not in SLOTS:
            active = "A"
        fallback = values.get("fallback", "")
        if fallback not in SLOTS or fallback == active:
            fallback = ""
        try:
            tries = max(0, int(values.get("tries", "0")))
        except ValueError:
            tries = 0
        return BootState(active, fallback, tries if fallback else 0)

    def to_meta(self, values: dict[str, str]) -> dict[str, str]:
        out = {k: v for k, v in values.items() if k not in ("active", "fallback", "tries")}
        out["active"] = self.active
        if self.fallback:
            out["fallback"] = self.fallback
            out["tries"] = str(self.tries)
        return out


def other(slot: str) -> str:
    if slot not in SLOTS:
        raise MetaError(f"boot slot {slot!r}: expected one of {', '.join(SLOTS)}")
    return "B" if slot == "A" else "A"


def next_boot(state: BootState) -> tuple[str, BootState]:
    """The slot this boot uses and the state to write before using it."""
    if not state.fallback:
        return state.active, state
    if state.tries > 0:
        return state.active, BootState(state.active, state.fallback, state.tries - 1)
    return state.fallback, BootState(state.fallback)


def stage_upgrade(state: BootState, tries: int = DEFAULT_TRIES) -> BootState:
    """After the inactive slot was written: boot it next, fall back to the current one."""
    if tries < 1:
        raise MetaError(f"upgrade tries {tries}: expected at least 1")
    return BootState(other(state.active), state.active, tries)


def confirm(state: BootState) -> BootState:
    """The running slot is healthy: keep it, forget the fallback."""
    return BootState(state.active)


def rollback(state: BootState) -> BootState:
    """Boot the other slot next (manual rollback)."""
    return BootState(other(state.active))


def read(path: str, offset: int = 0) -> dict[str, str]:
    """Read META from a device or file at ``offset`` (blocking)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return decode(os.pread(fd, BLOCK, offset))
    finally:
        os.close(fd)


def write(path: str, values: dict[str, str], offset: int = 0) -> None:
    """Write META to a device or file at ``offset`` and fsync (blocking)."""
    data = encode(values)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.pwrite(fd, data, offset) != len(data):
            raise OSError(f"{path}: short write of META")
        os.fsync(fd)
    finally:
        os.close(fd)
