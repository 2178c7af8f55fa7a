"""The partition layout planner: where new partitions go on a GPT disk.

Pure arithmetic on byte offsets. Given the disk size, the extents already in use and the
requested volumes (in order), ``plan`` returns one ``PlannedPartition`` per request:

* everything is aligned to 1 MiB (start and size) and lies inside the GPT usable area
  (after the primary table, before the backup table);
* planned partitions never overlap each other or existing partitions;
* each request is placed first-fit at its minimum size; afterwards the free space that
  remains in each gap is handed, in request order, to the requests that ``grow``, up to
  their ``max_size`` (0 means unbounded);
* a request that does not fit raises ``PlanError`` saying how much was needed and free.

``plan_grow`` answers how far an existing partition can grow into the space after it.
The defaults of an installed system are ``system_layout()``: META (1 MiB, raw), STATE
(100 MiB) and EPHEMERAL (the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MiB = 1024 * 1024
ALIGN = MiB
GPT_ENTRIES_BYTES = 128 * 128


class PlanError(ValueError):
    """The requested layout does not fit or is inconsistent."""


@dataclass(frozen=True)
class Extent:
    """A byte range [start, start + size)."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def overlaps(self, other: Extent) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class VolumeRequest:
    name: str
    min_size: int
    max_size: int = 0
    grow: bool = False


@dataclass(frozen=True)
class PlannedPartition:
    name: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def extent(self) -> Extent:
        return Extent(self.start, self.size)


def align_up(value: int, align: int = ALIGN) -> int:
    return -(-value // align) * align


def align_down(value: int, align: int = ALIGN) -> int:
    return value // align * align


def usable_region(disk_size: int, sector_size: int = 512) -> Extent:
    """The aligned part of the disk GPT lets partitions use (empty when the disk is tiny)."""
    table = GPT_ENTRIES_BYTES + sector_size  # header + entries
    first = align_up(sector_size + table)  # protective MBR, primary header, entries
    last = align_down(disk_size - table)  # backup entries + backup header at the end
    return Extent(first, max(0, last - first))


def system_layout(state_size: int = 100 * MiB) -> list[VolumeRequest]:
    """META (1 MiB raw), STATE (100 MiB), EPHEMERAL (rest, at least 100 MiB)."""
    return [
        VolumeRequest("META", MiB, MiB),
        VolumeRequest("STATE", state_size, state_size),
        VolumeRequest("EPHEMERAL", 100 * MiB, 0, grow=True),
    ]


def _validate(req: VolumeRequest) -> None:
    if req.min_size < 0 or req.max_size < 0:
        raise PlanError(f"volume {req.name}: sizes must not be negative (min {req.min_size}, max {req.max_size})")
    if req.min_size == 0 and not req.grow:
        raise PlanError(f"volume {req.name}: min_size is 0 and grow is off: the partition would be empty")
    if req.max_size and align_up(max(req.min_size, 1)) > req.max_size:
        raise PlanError(
            f"volume {req.name}: max_size {req.max_size} is smaller than min_size {req.min_size} rounded up to 1 MiB"
        )


def free_gaps(region: Extent, used: Sequence[Extent]) -> list[Extent]:
    """Aligned free extents of ``region`` not touched by ``used`` (used extents are widened
    to 1 MiB boundaries)."""
    gaps: list[Extent] = []
    cursor = region.start
    for ext in sorted(used, key=lambda e: e.start):
        lo, hi = align_down(ext.start), align_up(ext.end)
        if hi <= cursor:
            continue
        if lo > cursor:
            gaps.append(Extent(cursor, min(lo, region.end) - cursor))
        cursor = max(cursor, hi)
        if cursor >= region.end:
            break
    if cursor < region.end:
        gaps.append(Extent(cursor, region.end - cursor))
    return [g for g in gaps if g.size > 0]


def plan(
    disk_size: int,
    requests: Sequence[VolumeRequest],
    existing: Sequence[Extent] = (),
    sector_size: int = 512,
) -> list[PlannedPartition]:
    for req in requests:
        _validate(req)
    region = usable_region(disk_size, sector_size)
    gaps = free_gaps(region, existing)
    # pass 1: first fit at the minimum size; remember which gap each request went to
    fill = [0] * len(gaps)
    members: list[list[int]] = [[] for _ in gaps]
    sizes = [max(align_up(r.min_size), 0) for r in requests]
    for i, req in enumerate(requests):
        need = sizes[i]
        for g, gap in enumerate(gaps):
            if gap.size - fill[g] >= need:
                fill[g] += need
                members[g].append(i)
                break
        else:
            largest = max((gap.size - fill[g] for g, gap in enumerate(gaps)), default=0)
            raise PlanError(
                f"volume {req.name} needs at least {need} bytes ({need // MiB} MiB) but the largest free "
                f"aligned space left on the {disk_size}-byte disk is {largest} bytes ({largest // MiB} MiB)"
            )
    # pass 2: hand each gap's leftover to its growing members, in order; lay them out contiguously
    out: list[PlannedPartition | None] = [None] * len(requests)
    for g, gap in enumerate(gaps):
        spare = gap.size - fill[g]
        for i in members[g]:
            req = requests[i]
            if req.grow and spare > 0:
                cap = align_down(req.max_size) if req.max_size else sizes[i] + spare
                extra = max(0, min(spare, cap - sizes[i]))
                sizes[i] += extra
                spare -= extra
        cursor = gap.start
        for i in members[g]:
            out[i] = PlannedPartition(requests[i].name, cursor, sizes[i])
            cursor += sizes[i]
    result = [p for p in out if p is not None]
    empty = [p.name for p in result if p.size == 0]
    if empty:
        raise PlanError(f"volumes {', '.join(empty)} got no space: the disk has no free aligned space left")
    return result


def plan_grow(
    partition: Extent, disk_size: int, others: Sequence[Extent], max_size: int = 0, sector_size: int = 512
) -> int:
    """The size ``partition`` can grow to (aligned, never shrinking): up to the next used
    extent or the end of the usable area, capped by ``max_size``."""
    region = usable_region(disk_size, sector_size)
    limit = region.end
    for ext in others:
        if ext.start >= partition.end:
            limit = min(limit, align_down(ext.start))
    size = align_down(limit - partition.start)
    if max_size:
        size = min(size, align_down(max_size))
    return max(size, partition.size)
