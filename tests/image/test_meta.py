"""META store encoding and the A/B boot-slot state machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.platform.image import meta

keys = st.from_regex(meta.KEY_RE, fullmatch=True)
values = st.from_regex(r"[\x20-\x3c\x3e-\x7e]{0,40}", fullmatch=True)
states = st.builds(meta.BootState, st.sampled_from(meta.SLOTS), st.sampled_from(["", "A", "B"]),
                   st.integers(0, 5)).map(lambda s: meta.BootState.from_meta(s.to_meta({})))


@given(st.dictionaries(keys, values, max_size=10))
def test_encode_decode_round_trip(vals: dict[str, str]) -> None:
    block = meta.encode(vals)
    assert len(block) == meta.BLOCK
    assert meta.decode(block) == vals


@pytest.mark.parametrize("block", [b"\0" * 4096, b"garbage" * 100, meta.encode({"a": "1"})[:12]])
def test_blank_or_torn_block_is_empty(block: bytes) -> None:
    assert meta.decode(block) == {}
    assert meta.BootState.from_meta(meta.decode(block)) == meta.BootState("A")


@pytest.mark.parametrize(("vals", "message"), [({"Bad": "x"}, "META key 'Bad'"), ({"k": "a=b"}, "no '='"),
                                               ({"k": "x" * 201}, "at most 200")])
def test_bad_values_are_refused(vals: dict[str, str], message: str) -> None:
    with pytest.raises(meta.MetaError, match=message):
        meta.encode(vals)


def test_invalid_state_values_fall_back_safely() -> None:
    assert meta.BootState.from_meta({"active": "C"}) == meta.BootState("A")
    assert meta.BootState.from_meta({"active": "B", "fallback": "B", "tries": "3"}) == meta.BootState("B")
    assert meta.BootState.from_meta({"active": "B", "fallback": "A", "tries": "x"}) == meta.BootState("B", "A", 0)


@given(states, st.integers(1, 4))
def test_unconfirmed_upgrade_rolls_back_after_its_tries(start: meta.BootState, tries: int) -> None:
    old = meta.confirm(start).active
    state = meta.stage_upgrade(meta.confirm(start), tries)
    new = state.active
    assert new == meta.other(old)
    booted = []
    for _ in range(tries + 2):
        slot, state = meta.next_boot(state)
        booted.append(slot)
    assert booted == [new] * tries + [old, old]
    assert state == meta.BootState(old)


@given(states, st.integers(1, 4), st.integers(0, 3))
def test_confirmed_upgrade_stays(start: meta.BootState, tries: int, boots_before_confirm: int) -> None:
    state = meta.stage_upgrade(meta.confirm(start), tries)
    new = state.active
    for _ in range(min(boots_before_confirm, tries)):
        _, state = meta.next_boot(state)
    state = meta.confirm(state)
    for _ in range(5):
        slot, state = meta.next_boot(state)
        assert slot == new


def test_rollback_flips_and_stage_needs_a_try() -> None:
    assert meta.rollback(meta.BootState("A")) == meta.BootState("B")
    assert meta.rollback(meta.BootState("B", "A", 2)) == meta.BootState("A")
    with pytest.raises(meta.MetaError, match="tries 0"):
        meta.stage_upgrade(meta.BootState("A"), 0)


def test_state_keeps_other_keys(tmp_path: Path) -> None:
    dev = tmp_path / "meta"
    dev.write_bytes(b"\0" * (1 << 20))
    meta.write(str(dev), {"sha256-b": "abc", "active": "A"}, 8192)
    vals = meta.read(str(dev), 8192)
    new = meta.stage_upgrade(meta.BootState.from_meta(vals)).to_meta(vals)
    assert new == {"sha256-b": "abc", "active": "B", "fallback": "A", "tries": str(meta.DEFAULT_TRIES)}
    assert dev.read_bytes()[:8192] == b"\0" * 8192
