"""QController: startup listing, key exclusivity with concurrency, requeue, per-key backoff,
input mapping, hooks."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from kos.controllers.runtime import (
    Input,
    InputKind,
    Job,
    Output,
    OutputKind,
    QController,
    QRuntime,
    QSettings,
    ReducedMetadata,
    RequeueError,
    SkipReconcile,
)
from kos.controllers.runtime.testing import assert_resources
from kos.resources.core import Pointer
from tests.support.speed import scaled

from .harness import new_runtime, running, wait_until
from .testtypes import INTS, NS, STRS, int_ptr, int_res, str_res

pytestmark = pytest.mark.anyio

Body = Callable[["Recorder", QRuntime, Pointer], Awaitable[None]]


class Recorder(QController):
    """Records reconciles; ``body`` decides what each does."""

    def __init__(self, body: Body | None = None, *, concurrency: int = 1, name: str = "Recorder",
                 run_hook: Callable[[QRuntime], Awaitable[None]] | None = None) -> None:
        self.name = name
        self.body = body
        self.concurrency = concurrency
        self.calls: list[tuple[str, float]] = []
        self.active: set[str] = set()
        self.max_parallel = 0
        self.overlap_same_key = False
        self.shutdown = False
        self.run_hook = run_hook

    def settings(self) -> QSettings:
        def on_shutdown() -> None:
            self.shutdown = True

        return QSettings(
            inputs=[Input(NS, INTS.type, None, InputKind.Q_PRIMARY), Input(NS, STRS.type, None, InputKind.Q_MAPPED)],
            outputs=[Output(STRS.type, OutputKind.SHARED)],
            concurrency=self.concurrency,
            run_hook=self.run_hook,
            shutdown_hook=on_shutdown,
        )

    async def map_input(self, rt: QRuntime, reduced: ReducedMetadata) -> Sequence[Pointer]:
        if reduced.id == "bad":
            return [Pointer(NS, STRS.type, "bad")]  # not a QPrimary kind
        return [int_ptr(reduced.id)]

    async def reconcile(self, rt: QRuntime, ptr: Pointer) -> None:
        if ptr.id in self.active:
            self.overlap_same_key = True
        self.active.add(ptr.id)
        self.max_parallel = max(self.max_parallel, len(self.active))
        self.calls.append((ptr.id, anyio.current_time()))
        try:
            if self.body is not None:
                await self.body(self, rt, ptr)
        finally:
            self.active.discard(ptr.id)

    def ids(self) -> list[str]:
        return [c[0] for c in self.calls]


async def test_startup_lists_primaries_and_maps_inputs() -> None:
    state, rt = new_runtime()
    rec = Recorder()
    rt.register(rec)
    for id in ("a", "b"):
        await state.create(int_res(id, 1))
    async with running(rt):
        await wait_until(lambda: sorted(rec.ids()) == ["a", "b"], what="startup reconciles")
        await wait_all_tasks_blocked()
        assert sorted(rec.ids()) == ["a", "b"]  # startup list + bootstrap events deduplicated
        await state.create(str_res("a"))  # QMapped: mapped to the int with the same id
        await wait_until(lambda: rec.ids().count("a") == 2, what="mapped reconcile")
        await state.create(str_res("bad"))  # map_input returns a non-primary pointer: an error
        await wait_until(lambda: rt.metrics()["Recorder"]["errors"] >= 1, what="map error")
    assert rec.shutdown


async def test_key_never_runs_concurrently_with_itself() -> None:
    state, rt = new_runtime()
    gate = anyio.Event()

    async def slow(rec: Recorder, rt: QRuntime, ptr: Pointer) -> None:
        await gate.wait()

    rec = Recorder(slow, concurrency=4)
    rt.register(rec)
    async with running(rt):
        for id in ("a", "b", "c"):
            await state.create(int_res(id, 0))
        await wait_until(lambda: len(rec.active) == 3, what="3 keys in progress")
        for v in range(5):
            await state.update_with_conflicts(int_ptr("a"), lambda r, v=v: setattr(r.spec, "value", v + 1))
        await wait_all_tasks_blocked()
        assert rec.active == {"a", "b", "c"}
        assert rt.metrics()["Recorder"]["queue_depth"] == 1  # "a" parked, once
        gate.set()
        await wait_until(lambda: rec.ids().count("a") == 2 and not rec.active, what="parked key re-run")
        await wait_all_tasks_blocked()
    assert not rec.overlap_same_key
    assert rec.max_parallel == 3
    assert sorted(rec.ids()) == ["a", "a", "b", "c"]


async def test_requeue_after() -> None:
    state, rt = new_runtime()

    async def requeue_twice(rec: Recorder, rt: QRuntime, ptr: Pointer) -> None:
        if len(rec.calls) < 3:
            raise RequeueError(0.05)

    rec = Recorder(requeue_twice)
    rt.register(rec)
    await state.create(int_res("a", 0))
    async with running(rt):
        await wait_until(lambda: len(rec.calls) == 3, what="3 reconciles")
        await wait_all_tasks_blocked()
    times = [t for _, t in rec.calls]
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(times))
    assert rt.metrics()["Recorder"]["errors"] == 0  # a requeue without a cause is not an error


async def test_per_key_backoff_grows_and_is_per_key() -> None:
    state, rt = new_runtime()
    rt.backoff_initial, rt.backoff_max = 0.02, 5.0

    async def fail_a(rec: Recorder, rt: QRuntime, ptr: Pointer) -> None:
        if ptr.id == "a" and rec.ids().count("a") <= 4:
            raise RuntimeError("a fails")
        if ptr.id == "skip":
            raise SkipReconcile

    rec = Recorder(fail_a)
    adapter = rt.register(rec)
    for id in ("a", "b", "skip"):
        await state.create(int_res(id, 0))
    async with running(rt):
        await wait_until(lambda: rec.ids().count("a") == 5, what="5 attempts of a")
        await wait_all_tasks_blocked()
    assert rec.ids().count("b") == 1 and rec.ids().count("skip") == 1
    times = [t for id, t in rec.calls if id == "a"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # intervals 0.02, 0.03, 0.045, 0.0675 with +-50 % jitter; the scheduling slack on top follows
    # this machine's speed (a busy runner wakes the task late), the backoff bounds do not
    slack = scaled(0.25)
    for gap, interval in zip(gaps, [0.02, 0.03, 0.045, 0.0675], strict=True):
        assert interval * 0.5 - 0.002 <= gap <= interval * 1.5 + slack, (gaps, interval, slack)
    assert rt.metrics()["Recorder"]["errors"] == 4
    assert (int_ptr("a"), Job.RECONCILE) not in adapter._key_backoff  # type: ignore[attr-defined]


async def test_run_hook_restarts_and_reconciles_write_outputs() -> None:
    state, rt = new_runtime()
    hook_runs = 0

    async def hook(qrt: QRuntime) -> None:
        nonlocal hook_runs
        hook_runs += 1
        if hook_runs < 3:
            raise RuntimeError("hook crash")
        await qrt.modify(str_res("from-hook"), lambda r: setattr(r.spec, "value", "hook"))

    async def write(rec: Recorder, rt: QRuntime, ptr: Pointer) -> None:
        i = await rt.get(ptr)
        await rt.modify(str_res(ptr.id), lambda r: setattr(r.spec, "value", str(i.spec.value)))

    rt.register(Recorder(write, run_hook=hook))
    await state.create(int_res("n", 42))
    async with running(rt):
        await assert_resources(state, STRS, ["n", "from-hook"], lambda r: r.spec.value in ("42", "hook"))
    assert hook_runs == 3
    assert rt.metrics()["Recorder"]["crashes"] == 2
