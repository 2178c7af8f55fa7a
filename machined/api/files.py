"""The file RPCs of the machine service: List, Read, Copy, DiskUsage and Mounts.

``FilesAPI(policy)`` is a machine-API extension. Every path goes through ``FilePolicy``: it
must be absolute, is resolved (symlinks, ``..``) before the check, and must lie under one of
the policy's roots (``/var``, ``/etc``, ``/proc``, ``/sys``, ``/run``, ``/usr``, ``/opt``,
``/lib``, ``/boot``; ``/`` itself may be listed, showing those roots only). What may hold
secrets is withheld: the node's state directory (machine config, PKI, kosconfig), etcd's
data (``/var/lib/etcd``), any ``pki``/``secrets`` directory, ``*.key``/``*.pem`` and
kubeconfig files, ``/proc/<pid>/environ|mem|pagemap``, ``/proc/kcore`` and ``/proc/kmsg``
(and trace pipes, whose reads never end).
A withheld entry shows in listings with an error and is skipped by Copy; Read refuses it
with PERMISSION_DENIED. Everything is read-only.

Status codes: INVALID_ARGUMENT (relative path, bad depth), PERMISSION_DENIED (outside the
roots or withheld; the message starts ``access denied:``), NOT_FOUND, FAILED_PRECONDITION
(Read of something that is not a regular file). Listings and du walks stop after
``MAX_ENTRIES`` entries with a final entry saying so; all file system work runs in threads.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import anyio
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.resources.core import cap, echo

ROOTS = ("/var", "/etc", "/proc", "/sys", "/run", "/usr", "/opt", "/lib", "/boot")
SECRET_NAMES = ("pki", "secrets")
SECRET_GLOBS = ("*.key", "*.pem", "kosconfig", "talosconfig", "*kubeconfig*")
SECRET_DIRS = ("/var/lib/etcd",)  # the etcd data holds every Kubernetes secret
SECRET_PROC = ("/proc/kcore", "/proc/kmsg", "/proc/*/environ", "/proc/*/mem", "/proc/*/task/*/environ",
               "/proc/*/task/*/mem", "/proc/*/pagemap", "/proc/*/task/*/pagemap")
BLOCKING = ("*/trace_pipe", "*/trace_pipe_raw")  # reads that wait forever for new data
MAX_ENTRIES = 100_000
CHUNK = 64 * 1024


@dataclass(frozen=True)
class FilePolicy:
    """Which paths the file RPCs serve; ``secret_dirs`` adds the node's own (state dir...)."""

    roots: tuple[str, ...] = ROOTS
    secret_dirs: tuple[str, ...] = SECRET_DIRS

    def withheld(self, path: str) -> str:
        """Why ``path`` (resolved) is withheld, or "" when it may be served."""
        p = PurePosixPath(path)
        for d in self.secret_dirs:
            if p == PurePosixPath(d) or PurePosixPath(d) in p.parents:
                return f"{path} is under {d}, which holds secrets (machine config, keys, etcd data)"
        if any(part in SECRET_NAMES for part in p.parts):
            return f"{path} is in a directory of secrets"
        if any(fnmatch.fnmatchcase(p.name, g) for g in SECRET_GLOBS):
            return f"{path} may hold a key or credentials"
        if any(fnmatch.fnmatchcase(path, g) for g in SECRET_PROC):
            return f"{path} exposes process memory, environment or the kernel's"
        if any(fnmatch.fnmatchcase(path, g) for g in BLOCKING):
            return f"{path} is a stream that never ends (use kosctl dmesg / logs)"
        return ""

    def under_roots(self, path: str) -> bool:
        p = PurePosixPath(path)
        return any(p == PurePosixPath(r) or PurePosixPath(r) in p.parents for r in self.roots)

    def resolve(self, path: str, what: str = "path") -> str:
        """The resolved absolute path, or GRPCError (INVALID_ARGUMENT / PERMISSION_DENIED)."""
        if not path.startswith("/"):
            raise GRPCError(Status.INVALID_ARGUMENT, f"{what}: {echo(path)} is not an absolute path")
        if "\0" in path or len(path) > 4096:
            raise GRPCError(Status.INVALID_ARGUMENT, f"{what}: not a valid path (NUL byte or over 4096 bytes)")
        real = os.path.realpath(path)
        if real == "/":
            return real
        if not self.under_roots(real):
            shown = f"{echo(path)}" + (f" (resolves to {echo(real)})" if real != os.path.normpath(path) else "")
            raise GRPCError(Status.PERMISSION_DENIED, auth.ACCESS_DENIED_PREFIX
                            + f"{what}: {shown} is outside the paths served ({', '.join(self.roots)})")
        why = self.withheld(real)
        if why:
            raise GRPCError(Status.PERMISSION_DENIED, auth.ACCESS_DENIED_PREFIX + cap(f"{what}: {why}"))
        return real

    def child_allowed(self, parent: str, path: str) -> str:
        """For walks: "" when ``path`` may be shown/descended, else why not."""
        if parent == "/" and not self.under_roots(path):
            return "outside the paths served"
        return self.withheld(path)


def _info(path: str, root: str, st: os.stat_result | None, error: str = "") -> pb.FileInfo:
    rel = os.path.relpath(path, root) if path != root else "."
    if st is None:
        return pb.FileInfo(name=path, relative_name=rel, error=error)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        try:
            link = os.readlink(path)
        except OSError:
            link = ""
    return pb.FileInfo(
        name=path, relative_name=rel, size=st.st_size, mode=st.st_mode, modified=int(st.st_mtime),
        is_dir=stat.S_ISDIR(st.st_mode), link=link, uid=st.st_uid, gid=st.st_gid, error=error,
    )


_TYPE_OK = {
    pb.ListRequestType.REGULAR: stat.S_ISREG,
    pb.ListRequestType.DIRECTORY: stat.S_ISDIR,
    pb.ListRequestType.SYMLINK: stat.S_ISLNK,
}


def _scan(path: str) -> list[tuple[str, os.stat_result | None, str]]:
    out: list[tuple[str, os.stat_result | None, str]] = []
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    out.append((e.path, e.stat(follow_symlinks=False), ""))
                except OSError as exc:
                    out.append((e.path, None, exc.strerror or str(exc)))
    except OSError as exc:
        return [(path, None, exc.strerror or str(exc))]
    return sorted(out, key=lambda t: t[0])


class FilesAPI:
    def __init__(self, policy: FilePolicy | None = None) -> None:
        self.policy = policy or FilePolicy()

    def register(self, d: Dispatcher) -> None:
        p = auth.MACHINE
        d.add(p + "List", self.list, Cardinality.UNARY_STREAM)
        d.add(p + "Read", self.read, Cardinality.UNARY_STREAM)
        d.add(p + "Copy", self.copy, Cardinality.UNARY_STREAM)
        d.add(p + "DiskUsage", self.disk_usage, Cardinality.UNARY_STREAM)
        d.add(p + "Mounts", self.mounts, Cardinality.UNARY_UNARY)

    # -- List -------------------------------------------------------------------------------
    async def list(self, call: Call) -> None:
        req = parse(pb.ListRequest, await call.request())
        if req.recursion_depth < 0:
            raise GRPCError(Status.INVALID_ARGUMENT, f"recursion_depth: {req.recursion_depth} must be >= 0")
        root = await anyio.to_thread.run_sync(self.policy.resolve, req.root or "/", "root")
        st = await anyio.to_thread.run_sync(_lstat, root)
        if st is None:
            raise GRPCError(Status.NOT_FOUND, f"root: {echo(req.root)} does not exist")
        types = {pb.ListRequestType(t) for t in req.types}
        depth = (req.recursion_depth or 1 << 30) if req.recurse else 1
        sent = 0

        def wanted(s: os.stat_result | None) -> bool:
            return not types or (s is not None and any(_TYPE_OK[t](s.st_mode) for t in types))

        if not stat.S_ISDIR(st.st_mode):
            await call.send(bytes(_info(root, os.path.dirname(root), st)))
            return
        if wanted(st):
            await call.send(bytes(_info(root, root, st)))
        stack: list[tuple[str, int]] = [(root, 1)]
        while stack:
            path, level = stack.pop()
            entries = await anyio.to_thread.run_sync(_scan, path)
            children: list[tuple[str, int]] = []
            for child, cst, err in entries:
                if child == path and err:  # the directory itself could not be read
                    await call.send(bytes(_info(child, root, None, err)))
                    continue
                why = self.policy.child_allowed(path, child)
                if why:
                    if path != "/":
                        await call.send(bytes(_info(child, root, None, f"withheld: {why}")))
                    continue
                if wanted(cst) or err:
                    await call.send(bytes(_info(child, root, cst, err)))
                    sent += 1
                if cst is not None and stat.S_ISDIR(cst.st_mode) and level < depth:
                    children.append((child, level + 1))
                if sent >= MAX_ENTRIES:
                    await call.send(bytes(pb.FileInfo(
                        name=root, error=f"listing stopped after {MAX_ENTRIES} entries: narrow the root or depth")))
                    return
            stack.extend(reversed(children))

    # -- Read -------------------------------------------------------------------------------
    async def read(self, call: Call) -> None:
        req = parse(pb.ReadRequest, await call.request())
        path = await anyio.to_thread.run_sync(self.policy.resolve, req.path, "path")
        try:
            fd = await anyio.to_thread.run_sync(_open_regular, path)
        except FileNotFoundError:
            raise GRPCError(Status.NOT_FOUND, f"path: {echo(req.path)} does not exist") from None
        except IsADirectoryError:
            hint = "list it (kosctl ls) or copy it (kosctl cp)"
            raise GRPCError(Status.FAILED_PRECONDITION, f"path: {echo(req.path)} is a directory: {hint}") from None
        except ValueError as exc:
            raise GRPCError(Status.FAILED_PRECONDITION, f"path: {echo(req.path)}: {exc}") from None
        except OSError as exc:
            raise GRPCError(Status.FAILED_PRECONDITION, f"path: {echo(req.path)}: {exc.strerror or exc}") from None
        try:
            while True:
                chunk = await anyio.to_thread.run_sync(os.read, fd, CHUNK)
                if not chunk:
                    return
                await call.send(bytes(pb.Data(bytes=chunk)))
        finally:
            os.close(fd)

    # -- Copy -------------------------------------------------------------------------------
    async def copy(self, call: Call) -> None:
        req = parse(pb.CopyRequest, await call.request())
        path = await anyio.to_thread.run_sync(self.policy.resolve, req.root_path, "root_path")
        if path == "/":
            raise GRPCError(Status.INVALID_ARGUMENT, "root_path: '/' is too broad: copy one of "
                            + ", ".join(self.policy.roots) + " or below")
        if await anyio.to_thread.run_sync(_lstat, path) is None:
            raise GRPCError(Status.NOT_FOUND, f"root_path: {echo(req.root_path)} does not exist")
        r, w = os.pipe()
        os.set_blocking(r, False)
        reader = os.fdopen(r, "rb", buffering=0)
        writer = os.fdopen(w, "wb")

        def produce() -> None:
            try:
                with tarfile.open(fileobj=writer, mode="w|gz") as tar:
                    for full, arc in _walk_files(path, self.policy):
                        try:
                            tar.add(full, arcname=arc, recursive=False)
                        except OSError:
                            continue
            except BrokenPipeError:
                pass
            finally:
                try:
                    writer.close()
                except BrokenPipeError:
                    pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: anyio.to_thread.run_sync(produce, abandon_on_cancel=True))
            try:
                while True:
                    await anyio.wait_readable(reader)
                    chunk = reader.read(CHUNK)
                    if chunk is None:
                        continue
                    if not chunk:
                        break
                    await call.send(bytes(pb.Data(bytes=chunk)))
            finally:
                reader.close()

    # -- DiskUsage --------------------------------------------------------------------------
    async def disk_usage(self, call: Call) -> None:
        req = parse(pb.DiskUsageRequest, await call.request())
        if req.recursion_depth < 0:
            raise GRPCError(Status.INVALID_ARGUMENT, f"recursion_depth: {req.recursion_depth} must be >= 0")
        paths = list(req.paths) or ["/var"]
        resolved = [await anyio.to_thread.run_sync(self.policy.resolve, p, "paths") for p in paths]
        for p in resolved:
            rows = await anyio.to_thread.run_sync(_du, p, self.policy, req.recursion_depth, req.all)
            for name, size, err, rel in rows:
                if req.threshold > 0 and size < req.threshold and not err:
                    continue
                if req.threshold < 0 and size > -req.threshold and not err:
                    continue
                await call.send(bytes(pb.DiskUsageInfo(name=name, size=size, error=err, relative_name=rel)))

    # -- Mounts -----------------------------------------------------------------------------
    async def mounts(self, call: Call) -> None:
        parse(pb.MountsRequest, await call.request())
        stats = await anyio.to_thread.run_sync(read_mounts)
        await call.send(bytes(pb.MountsResponse(stats=stats)))


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _open_regular(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise IsADirectoryError(path)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ValueError("not a regular file (devices, sockets and pipes are not read)")
    os.set_blocking(fd, True)
    return fd


def _walk_files(root: str, policy: FilePolicy) -> Iterator[tuple[str, str]]:
    """(path, archive name) of ``root`` and everything below it that the policy serves;
    symlinks are archived as links, not followed."""
    base = os.path.dirname(root.rstrip("/")) or "/"
    yield root, os.path.relpath(root, base)
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not policy.withheld(os.path.join(dirpath, d)))
        for name in [*dirnames, *sorted(filenames)]:
            full = os.path.join(dirpath, name)
            if policy.withheld(full):
                continue
            count += 1
            if count > MAX_ENTRIES:
                return
            yield full, os.path.relpath(full, base)


def _du(root: str, policy: FilePolicy, depth: int, all_files: bool) -> list[tuple[str, int, str, str]]:
    """(path, apparent size in bytes, error) for ``root`` and, up to ``depth`` levels, below
    it (directories; files too with ``all_files``), sizes summed recursively."""
    out: list[tuple[str, int, str]] = []
    seen: set[tuple[int, int]] = set()
    budget = [MAX_ENTRIES * 10]

    def walk(path: str, level: int) -> int:
        try:
            st = os.lstat(path)
        except OSError as exc:
            out.append((path, 0, exc.strerror or str(exc)))
            return 0
        if (st.st_dev, st.st_ino) in seen:
            return 0
        seen.add((st.st_dev, st.st_ino))
        budget[0] -= 1
        if not stat.S_ISDIR(st.st_mode):
            if all_files and level <= depth and level > 0:
                out.append((path, st.st_size, ""))
            return st.st_size
        total = st.st_size
        entries: Sequence[str] = ()
        try:
            entries = sorted(os.listdir(path))
        except OSError as exc:
            out.append((path, 0, exc.strerror or str(exc)))
        for name in entries:
            if budget[0] <= 0:
                break
            child = os.path.join(path, name)
            if policy.withheld(child):
                continue
            total += walk(child, level + 1)
        if level <= depth:
            out.append((path, total, ""))
        return total

    walk(root, 0)
    if budget[0] <= 0:
        out.append((root, 0, f"stopped after {MAX_ENTRIES * 10} entries: sizes are lower bounds"))
    # parents after children from the walk; show top-down like du -d N reversed
    rows = sorted(out, key=lambda t: (t[0].count("/"), t[0]))
    return [(n, size, err, os.path.relpath(n, root) if n != root else ".") for n, size, err in rows]


def read_mounts(path: str = "/proc/self/mountinfo") -> list[pb.MountStat]:
    out = []
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 6 or len(rf) < 2:
            continue
        target = _unescape(lf[4])
        fstype, source = rf[0], _unescape(rf[1])
        size = avail = 0
        try:
            sv = os.statvfs(target)
            size, avail = sv.f_blocks * sv.f_frsize, sv.f_bavail * sv.f_frsize
        except OSError:
            pass
        out.append(pb.MountStat(filesystem=source, size=size, available=avail, mounted_on=target, type=fstype,
                                options=lf[5]))
    return out


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
