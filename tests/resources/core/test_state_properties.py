"""Property-based tests of the store: a stateful model check and watch/list equivalence."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kos.resources.core import (
    ConflictError,
    EventType,
    InMemoryState,
    LabelOp,
    LabelQuery,
    LabelTerm,
    NotFoundError,
    OwnerConflictError,
    Phase,
    PhaseConflictError,
    matches_labels,
)

from .testtypes import COUNTERS, counter, ptr

IDS = st.sampled_from(["a", "b", "c", "d"])
OWNERS = st.sampled_from(["", "ctrl-1", "ctrl-2"])
FINALIZERS = st.sampled_from(["f1", "f2"])


@dataclass
class Model:
    version: int
    owner: str
    value: int
    phase: Phase = Phase.RUNNING
    finalizers: list[str] = field(default_factory=list)


class StoreMachine(RuleBasedStateMachine):
    """Random create/update/destroy/teardown/finalizer operations against a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.state = InMemoryState()
        self.model: dict[str, Model] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    @rule(id=IDS, owner=OWNERS, value=st.integers(-5, 5))
    def create(self, id: str, owner: str, value: int) -> None:
        try:
            self.run(self.state.create(counter(id, value), owner=owner))
        except ConflictError:
            assert id in self.model
            return
        assert id not in self.model
        self.model[id] = Model(1, owner, value)

    @rule(id=IDS, owner=OWNERS, value=st.integers(-5, 5), version_delta=st.sampled_from([0, 0, 0, -1, 1]),
          expect=st.sampled_from([Phase.RUNNING, Phase.TEARING_DOWN, None]))
    def update(self, id: str, owner: str, value: int, version_delta: int, expect: Phase | None) -> None:
        m = self.model.get(id)
        r = counter(id, value)
        r.metadata.version = (m.version if m else 1) + version_delta
        r.metadata.owner = m.owner if m else owner
        if m:
            r.metadata.phase = m.phase
            r.metadata.finalizers = tuple(m.finalizers)
        try:
            self.run(self.state.update(r, owner=owner, expected_phase=expect))
        except NotFoundError:
            assert m is None
            return
        except OwnerConflictError:
            assert m is not None and m.owner != owner
            return
        except PhaseConflictError:
            assert m is not None and m.owner == owner and version_delta == 0
            assert expect is not None and m.phase != expect
            return
        except ConflictError:
            assert m is not None and m.owner == owner and version_delta != 0
            return
        assert m is not None and m.owner == owner and version_delta == 0 and expect in (None, m.phase)
        m.version += 1
        m.value = value

    @rule(id=IDS, owner=OWNERS)
    def destroy(self, id: str, owner: str) -> None:
        m = self.model.get(id)
        try:
            self.run(self.state.destroy(ptr(id), owner=owner))
        except NotFoundError:
            assert m is None
            return
        except OwnerConflictError:
            assert m is not None and m.owner != owner
            return
        except ConflictError:
            assert m is not None and m.finalizers
            return
        assert m is not None and m.owner == owner and not m.finalizers
        del self.model[id]

    @rule(id=IDS, owner=OWNERS)
    def teardown_resource(self, id: str, owner: str) -> None:
        m = self.model.get(id)
        try:
            ready = self.run(self.state.teardown(ptr(id), owner=owner))
        except NotFoundError:
            assert m is None
            return
        except OwnerConflictError:
            assert m is not None and m.owner != owner and m.phase == Phase.RUNNING
            return
        assert m is not None
        if m.phase == Phase.RUNNING:
            assert m.owner == owner
            m.phase = Phase.TEARING_DOWN
            m.version += 1
        assert ready == (not m.finalizers)

    @rule(id=IDS, fin=FINALIZERS)
    def add_finalizer(self, id: str, fin: str) -> None:
        m = self.model.get(id)
        try:
            self.run(self.state.add_finalizer(ptr(id), fin))
        except NotFoundError:
            assert m is None
            return
        assert m is not None
        if fin not in m.finalizers:
            m.finalizers.append(fin)
            m.version += 1

    @rule(id=IDS, fin=FINALIZERS)
    def remove_finalizer(self, id: str, fin: str) -> None:
        m = self.model.get(id)
        try:
            self.run(self.state.remove_finalizer(ptr(id), fin))
        except NotFoundError:
            assert m is None
            return
        assert m is not None
        if fin in m.finalizers:
            m.finalizers.remove(fin)
            m.version += 1

    @invariant()
    def store_matches_model(self) -> None:
        listed = self.run(self.state.list(COUNTERS))
        assert [r.id for r in listed] == sorted(self.model)
        for r in listed:
            m = self.model[r.id]
            md = r.metadata
            assert (md.version, md.owner, md.phase, list(md.finalizers), r.spec.value) == (
                m.version,
                m.owner,
                m.phase,
                m.finalizers,
                m.value,
            )


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# -- watch equivalence -------------------------------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["create", "update", "destroy"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.sampled_from(["web", "db", ""]),
    ),
    max_size=60,
)
QUERIES = st.sampled_from(
    [
        [],
        [LabelQuery([LabelTerm("app", LabelOp.EQUAL, ("web",))])],
        [LabelQuery([LabelTerm("app", LabelOp.IN, ("web", "db"))])],
        [LabelQuery([LabelTerm("app", LabelOp.EXISTS, invert=True)])],
        [LabelQuery([LabelTerm("app", LabelOp.EQUAL, ("db",))]), LabelQuery([LabelTerm("app", LabelOp.LT, ("c",))])],
    ]
)


async def _apply(state: InMemoryState, ops: list[tuple[str, str, str]]) -> None:
    for op, id, app in ops:
        labels = {"app": app} if app else {}
        try:
            if op == "create":
                await state.create(counter(id, labels=labels))
            elif op == "update":

                def change(r: Any, labels: dict[str, str] = labels) -> None:
                    r.metadata.labels = labels
                    r.spec.value += 1

                await state.update_with_conflicts(ptr(id), change)
            else:
                await state.destroy(ptr(id))
        except (ConflictError, NotFoundError):
            pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=OPS, after=OPS, queries=QUERIES, aggregated=st.booleans())
def test_watcher_replaying_events_ends_equal_to_list(
    before: list[tuple[str, str, str]], after: list[tuple[str, str, str]], queries: list[LabelQuery], aggregated: bool
) -> None:
    # the end marker carries labels the query sees, so the watcher knows when it has seen everything
    marker = next((m for m in ({"app": "web"}, {"app": "db"}, {}) if matches_labels(queries, m)), None)

    async def main() -> None:
        state = InMemoryState()
        await _apply(state, before)
        view: dict[str, Any] = {}
        watch = state.watch_kind_aggregated if aggregated else state.watch_kind
        async with watch(COUNTERS, bootstrap_contents=True, label_queries=queries) as events:
            bootstrapped = False
            applied_after = False
            it = events.__aiter__()
            while True:
                if bootstrapped and not applied_after:
                    await _apply(state, after)
                    applied_after = True
                    # a marker to know when every event has been seen
                    await state.create(counter("zz-end", labels=marker if marker is not None else {"app": "web"}))
                    await state.destroy(ptr("zz-end"))
                try:
                    item = await asyncio.wait_for(it.__anext__(), 2)
                except TimeoutError:
                    break
                for ev in item if aggregated else [item]:
                    if ev.type == EventType.BOOTSTRAPPED:
                        bootstrapped = True
                        continue
                    assert ev.type != EventType.ERRORED
                    r = ev.resource
                    if ev.type == EventType.DESTROYED:
                        view.pop(r.id, None)
                    else:
                        view[r.id] = (r.metadata.version, dict(r.metadata.labels))
                if applied_after and (
                    (not aggregated and item.resource.id == "zz-end" and item.type == EventType.DESTROYED)
                    or (aggregated and any(e.resource.id == "zz-end" and e.type == EventType.DESTROYED for e in item))
                ):
                    break
                if applied_after and marker is None:
                    # the end marker is invisible to this query: drain what is queued, then stop
                    try:
                        while True:
                            nxt = await asyncio.wait_for(it.__anext__(), 0.01)
                            for ev in nxt if aggregated else [nxt]:
                                r = ev.resource
                                if ev.type == EventType.DESTROYED:
                                    view.pop(r.id, None)
                                else:
                                    view[r.id] = (r.metadata.version, dict(r.metadata.labels))
                    except TimeoutError:
                        break
        listed = await state.list(COUNTERS, label_queries=queries)
        assert view == {r.id: (r.metadata.version, r.metadata.labels) for r in listed}

    asyncio.run(main())
