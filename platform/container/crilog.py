"""Kubernetes container logs as the kubelet leaves them on a node: finding a container's log
file and reading it in the CRI logging format.

The kubelet writes each container's output to ``/var/log/pods/<ns>_<pod>_<uid>/<container>/
<restart>.log`` and links it as ``/var/log/containers/<pod>_<ns>_<container>-<id>.log`` (the
id is containerd's 64-hex container id). Pod, namespace and container names are DNS labels, so
the ``_`` separators are unambiguous. Every line of such a file is ``<RFC 3339 time> <stdout|
stderr> <P|F>[:tags] <content>``: ``P`` marks a partial line whose rest follows in the next
record, ``F`` a full (last) one.

``containers(log_root)`` lists the linked containers; ``find(log_root, ref)`` resolves what an
operator names - ``ns/pod:container:<id prefix>`` (the ids ``kosctl containers -k`` prints),
``ns/pod:container``, ``ns/pod`` (a pod of one container) or a container id (prefix) - and
raises ``LookupError`` (nothing matches) or ``ValueError`` (malformed or ambiguous), both with
a message naming the reference. ``read_all``/``read_tail``/``follow`` yield the containers'
lines (content only, partial records joined), bounded: a joined line is cut at
``MAX_LINE`` bytes, ``read_tail`` reads at most ``MAX_TAIL_BYTES`` from the end of the file.
File I/O runs in worker threads.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio

MAX_REF = 512
MAX_LINE = 64 * 1024
MAX_TAIL_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024
FOLLOW_POLL = 0.5

_LABEL = r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?"
_LINK = re.compile(rf"^(?P<pod>{_LABEL})_(?P<ns>{_LABEL})_(?P<container>{_LABEL})-(?P<id>[0-9a-f]{{64}})\.log$")
_REF = re.compile(r"^[A-Za-z0-9./:_-]+$")
_HEX = re.compile(r"^[0-9a-f]{6,64}$")


@dataclass(frozen=True)
class PodContainer:
    namespace: str
    pod: str
    container: str
    id: str
    path: Path  # the log file (the link's target)
    mtime: float

    @property
    def ref(self) -> str:
        """The reference ``kosctl containers -k`` prints: ``ns/pod:container:<12 hex>``."""
        return f"{self.namespace}/{self.pod}:{self.container}:{self.id[:12]}"


def _target(link: Path, root: Path) -> Path:
    """Where a link in ``<root>/var/log/containers`` points, inside ``root`` (the node's /); a
    link that leads anywhere but the kubelet's ``var/log/pods`` raises ValueError (the Logs RPC
    reads that file for readers: it must never be a way to read other files of the node)."""
    target = Path(os.readlink(link))
    path = (link.parent / target if not target.is_absolute() else root / target.relative_to("/")).resolve()
    pods = (root / "var/log/pods").resolve()
    if not path.is_relative_to(pods):
        raise ValueError(f"{link.name}: points outside {pods}")
    return path


def _scan(log_root: Path) -> list[PodContainer]:
    base = log_root / "containers"
    root = log_root.parent.parent  # <root>/var/log -> <root>
    out: list[PodContainer] = []
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return out
    for entry in entries:
        m = _LINK.fullmatch(entry.name)
        if m is None:
            continue
        try:
            path = _target(Path(entry.path), root)
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue  # a link whose file is gone (the pod was removed)
        out.append(PodContainer(m["ns"], m["pod"], m["container"], m["id"], path, mtime))
    out.sort(key=lambda c: (c.namespace, c.pod, c.container, -c.mtime))
    return out


async def containers(log_root: Path) -> list[PodContainer]:
    """Every container whose log the kubelet links under ``<log_root>/containers``."""
    return await anyio.to_thread.run_sync(_scan, log_root)


def select(found: list[PodContainer], ref: str) -> PodContainer:
    """The one container ``ref`` names among ``found`` (see the module docstring)."""
    if not ref or len(ref) > MAX_REF or not _REF.fullmatch(ref):
        raise ValueError(f"container {ref[:80]!r}: expected NAMESPACE/POD[:CONTAINER[:ID]] or a container id "
                         f"(up to {MAX_REF} characters of letters, digits and . / : _ -)")
    if "/" in ref:
        ns, _, rest = ref.partition("/")
        pod, _, rest = rest.partition(":")
        container, _, cid = rest.partition(":")
        hits = [c for c in found if c.namespace == ns and c.pod == pod
                and (not container or c.container == container) and c.id.startswith(cid)]
        if container and not cid and hits:
            hits = [max(hits, key=lambda c: c.mtime)]  # the current attempt of that container
    elif _HEX.fullmatch(ref):
        hits = [c for c in found if c.id.startswith(ref)]
    else:
        raise ValueError(f"container {ref!r}: expected NAMESPACE/POD[:CONTAINER[:ID]] or a container id "
                         "(at least 6 hex digits)")
    if not hits:
        known = ", ".join(c.ref for c in found[:10]) + (" ..." if len(found) > 10 else "")
        raise LookupError(f"container {ref!r} not found among the Kubernetes containers of this node "
                          f"({known or 'none'}; see kosctl containers -k)")
    if len(hits) > 1:
        raise ValueError(f"container {ref!r} is ambiguous: {', '.join(c.ref for c in hits[:10])}")
    return hits[0]


async def find(log_root: Path, ref: str) -> PodContainer:
    return select(await containers(log_root), ref)


class LineJoiner:
    """CRI records in, the containers' lines out (partial records joined, lines capped)."""

    def __init__(self) -> None:
        self.rest = b""  # an incomplete record (no newline yet)
        self.partial = b""  # content of P records waiting for their F

    def feed(self, data: bytes) -> list[bytes]:
        data = self.rest + data
        *records, self.rest = data.split(b"\n")
        if len(self.rest) > MAX_LINE + 128:  # a record that never ends: keep a bounded head
            records.append(self.rest[: MAX_LINE + 128])
            self.rest = b""
        return list(self._lines(records))

    def _lines(self, records: Iterable[bytes]) -> Iterator[bytes]:
        for rec in records:
            parts = rec.split(b" ", 3)
            if len(parts) < 3:
                continue  # not a CRI record (an empty line)
            content = parts[3] if len(parts) == 4 else b""
            full = parts[2].split(b":", 1)[0] != b"P"
            self.partial = (self.partial + content)[:MAX_LINE]
            if full:
                yield self.partial
                self.partial = b""


def _read_range(path: Path, start: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(size)


async def read_all(path: Path) -> AsyncIterator[bytes]:
    """The whole log, in chunks of complete lines (each ending in a newline)."""
    joiner = LineJoiner()
    pos = 0
    while True:
        data = await anyio.to_thread.run_sync(_read_range, path, pos, CHUNK)
        if not data:
            return
        pos += len(data)
        lines = joiner.feed(data)
        if lines:
            yield b"".join(line + b"\n" for line in lines)


def _tail_start(path: Path, lines: int) -> int:
    """An offset from which the file holds at least ``lines`` records (or MAX_TAIL_BYTES)."""
    size = path.stat().st_size
    pos, seen = size, 0
    with open(path, "rb") as f:
        while pos > 0 and seen <= lines and size - pos < MAX_TAIL_BYTES:
            step = min(CHUNK, pos)
            pos -= step
            f.seek(pos)
            seen += f.read(step).count(b"\n")
    return pos


async def read_tail(path: Path, lines: int) -> tuple[list[bytes], int, LineJoiner]:
    """The last ``lines`` lines, the file offset read up to and the joiner holding what is left
    of an unfinished line (a follower goes on from both)."""
    start = await anyio.to_thread.run_sync(_tail_start, path, lines)
    joiner = LineJoiner()
    out: list[bytes] = []
    pos = start
    first = True
    while True:
        data = await anyio.to_thread.run_sync(_read_range, path, pos, CHUNK)
        if not data:
            break
        if first and start > 0:  # drop the record cut at the start offset
            cut = data.find(b"\n")
            data = data[cut + 1:] if cut >= 0 else b""
            pos += cut + 1 if cut >= 0 else 0
        first = False
        pos += len(data)
        out.extend(joiner.feed(data))
        out = out[-lines:]
    return out[-lines:], pos, joiner


async def follow(path: Path, offset: int, joiner: LineJoiner | None = None, *,
                 poll: float = FOLLOW_POLL) -> AsyncIterator[bytes]:
    """New lines written after ``offset``, for ever; a rotated file (new inode, or shorter than
    what was read) is read again from its start."""
    joiner = joiner or LineJoiner()
    ino = (await anyio.to_thread.run_sync(path.stat)).st_ino
    pos = offset
    while True:
        try:
            st = await anyio.to_thread.run_sync(path.stat)
        except FileNotFoundError:
            await anyio.sleep(poll)
            continue
        if st.st_ino != ino or st.st_size < pos:
            ino, pos, joiner = st.st_ino, 0, LineJoiner()
        if st.st_size > pos:
            data = await anyio.to_thread.run_sync(_read_range, path, pos, CHUNK)
            pos += len(data)
            lines = joiner.feed(data)
            if lines:
                yield b"".join(line + b"\n" for line in lines)
            continue
        await anyio.sleep(poll)
