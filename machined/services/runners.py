"""Runners: how a service's payload runs.

``ProcessRunner`` starts a subprocess (args/env/cwd, its own session, stdout+stderr into the
service's log ring, a dedicated cgroup where possible, optional new namespaces) and stops it
gracefully when cancelled: SIGTERM to the process group, ``stop_timeout`` seconds, then
SIGKILL to the group and everything left in its cgroup. ``TaskRunner`` runs an async function
in-process. Both return the exit code (0 = success) from ``run``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
import structlog

from kos.machined.services.cgroups import ServiceCgroup, enter_cgroups
from kos.machined.services.logring import LogRing

log = structlog.get_logger(__name__)

NAMESPACE_FLAGS = {
    "mount": 0x00020000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "net": 0x40000000,
    "pid": 0x20000000,
}


@dataclass
class RunContext:
    """What the supervisor hands a runner: where to log and whom to tell about progress."""

    service_id: str
    log: LogRing
    started: Callable[[int], None]
    """Called once the payload runs, with its pid (0 for in-process tasks)."""
    stopping: Callable[[str], None]
    """Called when a graceful stop begins, with a message."""
    cgroup: str = ""
    """``<parent>/<service id>``: where the process's cgroup goes (default ``kos/<id>``)."""


class Runner(abc.ABC):
    @abc.abstractmethod
    async def prepare(self) -> None:
        """Pre-start work (directories, config files); raising fails this attempt."""

    @abc.abstractmethod
    async def run(self, ctx: RunContext) -> int:
        """Run until the payload exits; return its exit code. Cancellation stops it."""


@dataclass
class ProcessRunner(Runner):
    args: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    stop_timeout: float = 10.0
    stop_signal: int = signal.SIGTERM
    cgroup: bool = True
    namespaces: Sequence[str] = ()
    prepare_fn: Callable[[], Awaitable[None]] | None = None
    netns_path: str | None = None
    """Join an existing network namespace (``/run/netns/X``) before exec."""

    def __post_init__(self) -> None:
        if not self.args:
            raise ValueError("ProcessRunner.args: expected a non-empty command line")
        bad = [n for n in self.namespaces if n not in NAMESPACE_FLAGS]
        if bad:
            raise ValueError(f"ProcessRunner.namespaces: unknown {bad}, expected any of {sorted(NAMESPACE_FLAGS)}")

    async def prepare(self) -> None:
        if self.prepare_fn is not None:
            await self.prepare_fn()

    def _preexec(self, procs: list[str], flags: int, netns_fd: int | None) -> Callable[[], None]:
        libc = ctypes.CDLL(None, use_errno=True)

        def fn() -> None:
            enter_cgroups(procs)
            if netns_fd is not None and libc.setns(netns_fd, NAMESPACE_FLAGS["net"]) != 0:
                raise OSError(ctypes.get_errno(), "setns(net) failed")
            if flags and libc.unshare(flags) != 0:
                raise OSError(ctypes.get_errno(), "unshare failed")

        return fn

    async def run(self, ctx: RunContext) -> int:
        cg = ServiceCgroup(ctx.cgroup or f"kos/{ctx.service_id}")
        if self.cgroup:
            await anyio.to_thread.run_sync(cg.create)
        flags = 0
        for n in self.namespaces:
            flags |= NAMESPACE_FLAGS[n]
        netns_fd = os.open(self.netns_path, os.O_RDONLY) if self.netns_path else None
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=self._preexec(cg.procs_files(), flags, netns_fd),
                pass_fds=(netns_fd,) if netns_fd is not None else (),
            )
        except BaseException:
            cg.remove()
            raise
        finally:
            if netns_fd is not None:
                os.close(netns_fd)
        ctx.started(proc.pid)
        try:
            drained = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, proc, ctx.log, drained)
                code = await proc.wait()
                with anyio.move_on_after(1.0):  # a grandchild may hold the pipe open
                    await drained.wait()
                tg.cancel_scope.cancel()
            return code
        finally:
            with anyio.CancelScope(shield=True):
                await self._terminate(proc, cg, ctx)

    async def _terminate(self, proc: asyncio.subprocess.Process, cg: ServiceCgroup, ctx: RunContext) -> None:
        if proc.returncode is None:
            ctx.stopping(f"sending signal {signal.Signals(self.stop_signal).name} to pid {proc.pid}")
            _killpg(proc.pid, self.stop_signal)
            with anyio.move_on_after(self.stop_timeout):
                await proc.wait()
            if proc.returncode is None:
                ctx.stopping(f"pid {proc.pid} did not stop within {self.stop_timeout:g}s: sending SIGKILL")
                _killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        _killpg(proc.pid, signal.SIGKILL)  # stragglers of the session
        deadline = time.monotonic() + 2
        while cg.pids() and time.monotonic() < deadline:
            cg.kill_all()
            await anyio.sleep(0.02)
        cg.remove()


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _pump(proc: asyncio.subprocess.Process, ring: LogRing, drained: anyio.Event) -> None:
    assert proc.stdout is not None
    while True:
        chunk = await proc.stdout.read(256 * 1024)
        if not chunk:
            drained.set()
            return
        ring.write(chunk)


@dataclass
class TaskRunner(Runner):
    """An in-process service: ``fn(log)`` runs until it returns (exit code 0) or raises (1)."""

    fn: Callable[[LogRing], Awaitable[None]]
    prepare_fn: Callable[[], Awaitable[None]] | None = None

    async def prepare(self) -> None:
        if self.prepare_fn is not None:
            await self.prepare_fn()

    async def run(self, ctx: RunContext) -> int:
        ctx.started(0)
        try:
            await self.fn(ctx.log)
        except Exception as exc:
            ctx.log.write(f"task failed: {exc!r}\n".encode())
            return 1
        return 0
