"""PID-1 duties of machined: early mounts, zombie reaping, signals, and the way out (reboot or
power-off through the reboot syscall).

* ``mount_early()`` mounts what the kernel offers and is not mounted yet: /proc, /sys, /dev
  (devtmpfs, or tmpfs when devtmpfs is not available), /dev/pts, /dev/shm, /run, /tmp and the
  cgroup hierarchies (cgroup2 when the kernel has it, else a tmpfs with one v1 hierarchy per
  controller from /proc/cgroups). It returns what it mounted.
* ``Reaper`` collects zombies re-parented to PID 1. asyncio reaps the children it spawned
  itself (the service supervisor's processes) with ``waitpid(pid)``; a global ``waitpid(-1)``
  would steal their exit status. So the reaper only collects a zombie it has seen on two
  scans ``grace`` seconds apart (same pid and start time): orphans stay zombies, supervised
  children are reaped by asyncio within milliseconds. Scans run on SIGCHLD and every few
  seconds; a scan first asks the kernel whether any child is waitable at all (``waitid`` with
  WNOWAIT, which reaps nothing) and walks /proc only then: an idle node's periodic scan is one
  system call, not a read of every process's stat (that walk was the largest part of idle
  machined's CPU in a TCG VM).
* Signals: SIGTERM asks for a shutdown, SIGINT for a reboot (with ``ctrl_alt_del_signal()``
  the kernel turns Ctrl-Alt-Del into SIGINT to PID 1), SIGHUP is ignored.
* ``power_off(action)`` syncs, unmounts what can be unmounted (deepest first, lazily) and
  calls reboot(2). In a PID namespace (a namespace node) the kernel turns that call into the
  end of the namespace's init: killed by SIGHUP for a restart, by SIGINT for a power-off,
  which is how the provisioner's keeper knows to start the node again.
* ``never_exit(fn)``: runs ``fn``; if it fails, logs the error, waits and reboots (PID 1 must
  not exit: the kernel would panic).
"""

from __future__ import annotations

import enum
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from kos.platform.linux import syscalls as sc
from kos.resources.lazy import logger

log = logger("kos.machined.init")  # structlog on the first line logged (machined starts without it)


class Action(enum.Enum):
    REBOOT = "reboot"
    SHUTDOWN = "shutdown"


def is_pid1() -> bool:
    return os.getpid() == 1


def _mounted(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return set()
    return {line.split()[4] for line in text.splitlines() if len(line.split()) > 4}


def _filesystems() -> set[str]:
    try:
        text = Path("/proc/filesystems").read_text()
    except OSError:
        return {"proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "cgroup", "cgroup2"}
    return {line.split()[-1] for line in text.splitlines() if line.strip()}


@dataclass(frozen=True)
class MountPoint:
    target: str
    fstype: str
    source: str
    flags: int = 0
    data: str = ""


EARLY = (
    MountPoint("/proc", "proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC),
    MountPoint("/sys", "sysfs", "sysfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC),
    MountPoint("/dev", "devtmpfs", "devtmpfs", sc.MS_NOSUID, "mode=0755"),
    MountPoint("/dev/pts", "devpts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "ptmxmode=0666,mode=0620"),
    MountPoint("/dev/shm", "tmpfs", "shm", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777"),
    MountPoint("/run", "tmpfs", "run", sc.MS_NOSUID | sc.MS_NODEV, "mode=0755"),
    MountPoint("/tmp", "tmpfs", "tmp", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777"),
)


def _cgroup_v1_controllers() -> list[str]:
    try:
        lines = Path("/proc/cgroups").read_text().splitlines()[1:]
    except OSError:
        return []
    return [p[0] for p in (line.split() for line in lines) if len(p) >= 4 and p[3] == "1"]


def mount_early(root: str = "/") -> list[str]:
    """Mount the early filesystems under ``root`` that are not mounted yet; returns the targets
    mounted. A mount the kernel refuses is logged and skipped (the node runs without it)."""
    done: list[str] = []
    fs = _filesystems()

    def one(m: MountPoint) -> None:
        target = os.path.join(root, m.target.lstrip("/"))
        if target.rstrip("/") in _mounted() or (target == "/" and root == "/"):
            return
        fstype = m.fstype
        if fstype == "devtmpfs" and fstype not in fs:
            fstype = "tmpfs"
        if fstype not in fs:
            log.warning("filesystem not offered by the kernel", fstype=fstype, target=target)
            return
        try:
            os.makedirs(target, exist_ok=True)
            sc.mount(m.source, target, fstype, m.flags, m.data)
            done.append(target)
        except OSError as exc:
            log.warning("early mount failed", target=target, error=str(exc))

    for m in EARLY:
        one(m)
    cg = os.path.join(root, "sys/fs/cgroup")
    if cg not in _mounted() and os.path.isdir(cg):
        if "cgroup2" in fs and not _cgroup_v1_controllers():
            one(MountPoint("/sys/fs/cgroup", "cgroup2", "cgroup2", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC))
        else:
            one(MountPoint("/sys/fs/cgroup", "tmpfs", "cgroup", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755"))
            for ctrl in _cgroup_v1_controllers():
                one(MountPoint(f"/sys/fs/cgroup/{ctrl}", "cgroup", "cgroup",
                               sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, ctrl))
    return done


# -- zombies ------------------------------------------------------------------------------------


def _zombie_children(parent: int) -> dict[int, str]:
    """pid -> start time of zombie processes whose parent is ``parent``."""
    out: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 19 and fields[0] == "Z" and int(fields[1]) == parent:
            out[int(entry.name)] = fields[19]
    return out


def _has_waitable_child() -> bool:
    """Whether any child of this process has exited and waits to be reaped: ``waitid`` with
    WNOWAIT looks without reaping (asyncio's watchers still get their children's status)."""
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # no children at all
        return False


@dataclass
class Reaper:
    """Collects orphaned zombies (see the module docstring for why it waits ``grace``)."""

    grace: float = 1.0
    interval: float = 5.0
    reaped: list[int] = field(default_factory=list)
    _seen: dict[int, tuple[str, float]] = field(default_factory=dict)

    def scan(self, now: float | None = None) -> list[int]:
        now = time.monotonic() if now is None else now
        if not _has_waitable_child():  # the common case, one syscall: no /proc walk
            self._seen.clear()
            return []
        zombies = _zombie_children(os.getpid())
        collected = []
        for pid, start in zombies.items():
            seen = self._seen.get(pid)
            if seen is None or seen[0] != start:
                self._seen[pid] = (start, now)
                continue
            if now - seen[1] < self.grace:
                continue
            try:
                got, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                got = pid  # someone else reaped it meanwhile
            if got == pid:
                collected.append(pid)
                self._seen.pop(pid, None)
        for pid in list(self._seen):
            if pid not in zombies:
                del self._seen[pid]
        self.reaped.extend(collected)
        del self.reaped[:-1000]
        return collected

    async def run(self) -> None:
        with anyio.open_signal_receiver(signal.SIGCHLD) as sigs:
            ait = sigs.__aiter__()
            while True:
                with anyio.move_on_after(self.grace if self._seen else self.interval):
                    await ait.__anext__()
                n = self.scan()
                if n:
                    log.debug("reaped orphans", pids=n)


# -- signals and the way out -------------------------------------------------------------------

LINUX_REBOOT_CMD_CAD_OFF = 0


def ctrl_alt_del_signal() -> None:
    """Make the kernel send SIGINT to PID 1 on Ctrl-Alt-Del instead of rebooting at once."""
    try:
        sc.reboot(LINUX_REBOOT_CMD_CAD_OFF)
    except OSError as exc:
        log.warning("cannot route ctrl-alt-del to PID 1", error=str(exc))


async def signal_actions(request: Callable[[Action, str], None]) -> None:
    """Map PID-1 signals to requests: SIGTERM -> shutdown, SIGINT (ctrl-alt-del) -> reboot."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
        async for sig in sigs:
            name = signal.Signals(sig).name
            log.info("signal received", signal=name)
            request(Action.SHUTDOWN if sig == signal.SIGTERM else Action.REBOOT, name)


def unmount_all(keep: tuple[str, ...] = ("/", "/proc", "/sys", "/dev")) -> list[str]:
    """Unmount every mount but ``keep``, deepest first (lazily for busy ones); returns failures."""
    failed = []
    targets = sorted(_mounted(), key=lambda t: t.count("/"), reverse=True)
    for t in targets:
        if t in keep:
            continue
        try:
            sc.umount(t)
        except OSError:
            try:
                sc.umount(t, sc.MNT_DETACH)
            except OSError as exc:
                failed.append(f"{t}: {exc.strerror}")
    return failed


def power_off(action: Action, *, unmount: bool = True) -> None:
    """sync, unmount, reboot(2). Returns only if the call fails (not PID 1 or no CAP_SYS_BOOT)."""
    log.info("powering off", action=action.value)
    os.sync()
    if unmount:
        failed = unmount_all()
        if failed:
            log.warning("some filesystems stayed mounted", failed=failed)
        os.sync()
    sc.reboot(sc.LINUX_REBOOT_CMD_RESTART if action is Action.REBOOT else sc.LINUX_REBOOT_CMD_POWER_OFF)


def never_exit(fn: Callable[[], int], *, wait: float = 10.0, pid1: bool | None = None) -> int:
    """Run ``fn``; as PID 1 a failure (or a return) logs, waits ``wait`` s and reboots."""
    pid1 = is_pid1() if pid1 is None else pid1
    try:
        rc = fn()
        if not pid1:
            return rc
        log.error("machined returned as PID 1: rebooting", rc=rc)
    except BaseException as exc:
        if not pid1:
            raise
        log.critical("machined failed as PID 1: rebooting", error=repr(exc))
    time.sleep(wait)
    while True:  # PID 1 must not exit
        try:
            power_off(Action.REBOOT, unmount=False)
        except OSError as exc:
            log.critical("reboot failed", error=str(exc))
        time.sleep(wait)
