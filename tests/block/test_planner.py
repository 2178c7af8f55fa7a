"""The partition layout planner: examples plus hypothesis invariants (aligned, inside the
usable area, never overlapping, min/max respected, grow takes the rest)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kos.controllers.block.planner import (
    ALIGN,
    Extent,
    MiB,
    PlanError,
    VolumeRequest,
    free_gaps,
    plan,
    plan_grow,
    system_layout,
    usable_region,
)

GiB = 1024 * MiB


def test_system_layout_on_a_fresh_disk() -> None:
    parts = plan(10 * GiB, system_layout())
    names = [p.name for p in parts]
    assert names == ["META", "STATE", "EPHEMERAL"]
    meta, state, eph = parts
    assert (meta.start, meta.size) == (MiB, MiB)
    assert (state.start, state.size) == (2 * MiB, 100 * MiB)
    assert eph.start == 102 * MiB
    assert eph.end == usable_region(10 * GiB).end  # the rest of the disk


def test_too_small_disk_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match="volume EPHEMERAL needs at least 104857600 bytes"):
        plan(150 * MiB, system_layout())


def test_invalid_requests() -> None:
    with pytest.raises(PlanError, match="max_size 1000 is smaller than min_size"):
        plan(GiB, [VolumeRequest("U", 2000, 1000)])
    with pytest.raises(PlanError, match="partition would be empty"):
        plan(GiB, [VolumeRequest("U", 0)])


def test_user_volume_fills_gap_between_existing() -> None:
    existing = [Extent(MiB, 10 * MiB), Extent(100 * MiB, 10 * MiB)]
    parts = plan(GiB, [VolumeRequest("A", 50 * MiB), VolumeRequest("B", 200 * MiB, grow=True, max_size=300 * MiB)],
                 existing)
    a, b = parts
    assert a.start == 11 * MiB and a.size == 50 * MiB
    assert b.start == 110 * MiB and b.size == 300 * MiB


def test_plan_grow() -> None:
    part = Extent(102 * MiB, 100 * MiB)
    assert plan_grow(part, 2 * GiB, []) == usable_region(2 * GiB).end - 102 * MiB
    assert plan_grow(part, 2 * GiB, [Extent(500 * MiB, MiB)]) == 398 * MiB
    assert plan_grow(part, 2 * GiB, [], max_size=150 * MiB) == 150 * MiB
    assert plan_grow(part, 150 * MiB, []) == 100 * MiB  # never shrinks


requests = st.lists(
    st.builds(
        VolumeRequest,
        name=st.text(alphabet="ABCDEFGH", min_size=1, max_size=4),
        min_size=st.integers(1, 300 * MiB),
        max_size=st.one_of(st.just(0), st.integers(1, 600 * MiB)),
        grow=st.booleans(),
    ),
    min_size=1,
    max_size=6,
)
existing_extents = st.lists(
    st.builds(Extent, st.integers(0, 2 * GiB), st.integers(1, 200 * MiB)), max_size=4
).map(lambda xs: _disjoint(xs))


def _disjoint(extents: list[Extent]) -> list[Extent]:
    out: list[Extent] = []
    for e in sorted(extents, key=lambda e: e.start):
        if all(not e.overlaps(o) for o in out):
            out.append(e)
    return out


@settings(max_examples=400, deadline=None)
@given(st.integers(1 * MiB, 4 * GiB), requests, existing_extents)
def test_plan_invariants(disk_size: int, reqs: list[VolumeRequest], existing: list[Extent]) -> None:
    assume(all(not r.max_size or -(-r.min_size // ALIGN) * ALIGN <= r.max_size for r in reqs))
    region = usable_region(disk_size)
    try:
        parts = plan(disk_size, reqs, existing)
    except PlanError as exc:
        # only when the minimum sizes cannot be placed: check that claim
        assert "needs at least" in str(exc) or "got no space" in str(exc)
        return
    assert [p.name for p in parts] == [r.name for r in reqs]
    for p, r in zip(parts, reqs, strict=True):
        assert p.start % ALIGN == 0 and p.size % ALIGN == 0
        assert region.start <= p.start and p.end <= region.end
        assert p.size >= r.min_size
        if r.max_size:
            assert p.size <= r.max_size
        if not r.grow:
            assert p.size == -(-r.min_size // ALIGN) * ALIGN
        for e in existing:
            assert not p.extent.overlaps(e)
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            assert not a.extent.overlaps(b.extent)
    # a gap holding an unbounded growing volume is used up completely
    for gap in free_gaps(region, existing):
        inside = [(p, r) for p, r in zip(parts, reqs, strict=True) if gap.start <= p.start < gap.end]
        if any(r.grow and not r.max_size for _, r in inside):
            assert sum(p.size for p, _ in inside) == gap.size


@settings(max_examples=200, deadline=None)
@given(st.integers(300 * MiB, 64 * GiB))
def test_system_layout_uses_the_whole_disk(disk_size: int) -> None:
    parts = plan(disk_size, system_layout())
    region = usable_region(disk_size)
    assert parts[0].start == region.start
    assert parts[-1].end == region.end
    assert sum(p.size for p in parts) == region.size
