"""Linux system calls through libc (ctypes): mount, umount2, pivot_root, sethostname, setns,
unshare, reboot. Each raises ``OSError`` with errno and a message naming the call and its
arguments, so failures say what was attempted."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

MNT_DETACH = 2

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

_SYS_PIVOT_ROOT = 155  # x86_64


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str | Path, fstype: str = "", flags: int = 0, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode(), str(target).encode(), fstype.encode() or None, ctypes.c_ulong(flags), data.encode() or None
        ),
        f"mount({source!r}, {str(target)!r}, {fstype!r}, {flags:#x}, {data!r})",
    )


def bind(source: str | Path, target: str | Path, *, readonly: bool = False, recursive: bool = False) -> None:
    """Bind-mount ``source`` on ``target``; read-only binds need a second remount call."""
    flags = MS_BIND | (MS_REC if recursive else 0)
    mount(str(source), target, "", flags)
    if readonly:
        mount("none", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY | (MS_REC if recursive else 0))


def umount(target: str | Path, flags: int = 0) -> None:
    _check(_libc.umount2(str(target).encode(), ctypes.c_int(flags)), f"umount2({str(target)!r}, {flags})")


def pivot_root(new_root: str | Path, put_old: str | Path) -> None:
    _check(
        _libc.syscall(ctypes.c_long(_SYS_PIVOT_ROOT), str(new_root).encode(), str(put_old).encode()),
        f"pivot_root({str(new_root)!r}, {str(put_old)!r})",
    )


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), f"sethostname({name!r})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd}, {nstype:#x})")


def reboot(cmd: int) -> None:
    """reboot(2) with one of the LINUX_REBOOT_CMD_* values (only meaningful as PID 1)."""
    _check(_libc.reboot(ctypes.c_int(cmd)), f"reboot({cmd:#x})")


LINUX_REBOOT_CMD_RESTART = 0x01234567
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC
