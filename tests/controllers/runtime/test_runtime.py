"""The runtime proper: trigger coalescing, DestroyReady, exact-id inputs, restarts and backoff,
watch errors, registration while running, clean shutdown, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from kos.controllers.runtime import (
    Controller,
    ControllerRuntime,
    Input,
    InputKind,
    Output,
    OutputKind,
    Runtime,
    RuntimeWatchError,
)
from kos.controllers.runtime.testing import assert_resources
from kos.resources.core import InMemoryState

from .conformance import FailingController, QIntToStrController, SumController
from .harness import new_runtime, running, wait_until
from .testtypes import INTS, NS, STRS, int_ptr, int_res, str_ptr, str_res

pytestmark = pytest.mark.anyio


class Counting(Controller):
    """Counts reconciles; optionally blocks each one on a gate."""

    def __init__(self, name: str, inputs: Sequence[Input], gated: bool = False) -> None:
        self.name = name
        self._inputs = inputs
        self.count = 0
        self.gate = anyio.Event()
        if not gated:
            self.gate.set()
        self.stopped = False

    def inputs(self) -> Sequence[Input]:
        return self._inputs

    def outputs(self) -> Sequence[Output]:
        return []

    async def run(self, rt: ControllerRuntime) -> None:
        try:
            async for _ in rt.events():
                self.count += 1
                await self.gate.wait()
        finally:
            self.stopped = True


async def test_triggers_coalesce_while_busy() -> None:
    state, rt = new_runtime()
    c = Counting("gated", [Input(NS, INTS.type)], gated=True)
    rt.register(c)
    await state.create(int_res("a", 0))
    async with running(rt):
        await wait_all_tasks_blocked()
        assert c.count == 1  # the registration reconcile (the bootstrap trigger coalesced into it)
        for i in range(50):
            await state.update_with_conflicts(int_ptr("a"), lambda r, v=i: setattr(r.spec, "value", v + 1))
            await anyio.lowlevel.checkpoint()  # let the runtime deliver each change separately
        await wait_all_tasks_blocked()
        assert rt.metrics()["gated"]["queue_depth"] == 1
        c.gate.set()
        await wait_all_tasks_blocked()
        assert c.count == 2  # 50 triggers while busy -> exactly one more reconcile
        assert rt.metrics()["gated"] == {"reconciles": 2, "errors": 0, "crashes": 0, "restarts": 0,
                                         "queue_depth": 0, "last_error": ""}


async def test_destroy_ready_input_triggers_only_when_destroy_ready() -> None:
    state, rt = new_runtime()
    c = Counting("dr", [Input(NS, STRS.type, None, InputKind.DESTROY_READY)])
    rt.register(c)
    async with running(rt):
        await wait_all_tasks_blocked()
        base = c.count
        await state.create(str_res("s"))
        await state.add_finalizer(str_ptr("s"), "f")
        assert not await state.teardown(str_ptr("s"))
        await wait_all_tasks_blocked()
        assert c.count == base  # created, finalizer, tearingDown with finalizer: none is destroy-ready
        await state.remove_finalizer(str_ptr("s"), "f")
        await wait_all_tasks_blocked()
        assert c.count == base + 1
        await state.destroy(str_ptr("s"))
        await wait_all_tasks_blocked()
        assert c.count == base + 2  # Destroyed carries the last (tearingDown, no finalizers) state


async def test_exact_id_input_ignores_other_ids() -> None:
    state, rt = new_runtime()
    c = Counting("one", [Input(NS, INTS.type, "a")])
    w = Counting("all", [Input(NS, INTS.type)])
    rt.register(c)
    rt.register(w)
    async with running(rt):
        await wait_all_tasks_blocked()
        c0, w0 = c.count, w.count
        await state.create(int_res("b", 1))
        await wait_all_tasks_blocked()
        assert (c.count, w.count) == (c0, w0 + 1)
        await state.create(int_res("a", 1))
        await wait_all_tasks_blocked()
        assert (c.count, w.count) == (c0 + 1, w0 + 2)
        await state.create(int_res("a", 1, ns="elsewhere"))
        await wait_all_tasks_blocked()
        assert (c.count, w.count) == (c0 + 1, w0 + 2)


async def test_restart_backoff_grows_and_resets() -> None:
    _state, rt = new_runtime()
    rt.backoff_max = 10.0
    failing = FailingController("f")
    adapter = rt.register(failing)
    async with running(rt):
        await wait_until(lambda: failing.runs >= 5, what="5 runs")
    assert failing.runs >= 5
    crashes = rt.metrics()["FailingController"]["crashes"]
    # every crash grows the interval by 1.5 (jitter only affects the delay actually slept)
    assert adapter.backoff.current == pytest.approx(0.01 * 1.5**crashes)
    adapter.reset_restart_backoff()
    assert adapter.backoff.current == 0.01


async def test_clean_return_finishes_and_reset_backoff() -> None:
    _state, rt = new_runtime()

    class ThreeStrikes(Controller):
        name = "three"
        runs = 0

        def inputs(self) -> Sequence[Input]:
            return []

        def outputs(self) -> Sequence[Output]:
            return []

        async def run(self, rt: ControllerRuntime) -> None:
            await rt.wait()  # a reconcile is queued again after every restart
            self.runs += 1
            if self.runs < 4:
                raise ValueError(f"strike {self.runs}")
            rt.reset_restart_backoff()

    ctrl = ThreeStrikes()
    adapter = rt.register(ctrl)
    async with running(rt):
        await wait_until(lambda: adapter.finished, what="controller finished")  # type: ignore[attr-defined]
        await wait_all_tasks_blocked()
    assert ctrl.runs == 4
    m = rt.metrics()["three"]
    assert (m["crashes"], m["restarts"], m["reconciles"]) == (3, 3, 4)
    assert adapter.backoff.current == 0.01


async def test_watch_error_aborts_runtime() -> None:
    state = InMemoryState(history_initial=4, history_max=4, history_gap=1)
    rt = Runtime(state, backoff_initial=0.01)
    rt.register(Counting("c", [Input(NS, INTS.type)]))
    errors: list[BaseException] = []

    async def run() -> None:
        try:
            await rt.run()
        except RuntimeWatchError as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await wait_all_tasks_blocked()
            for i in range(20):  # no await yields in between: the watcher falls a ring behind
                await state.create(int_res(f"i{i}", i))
    assert len(errors) == 1
    assert "controller runtime watch error" in str(errors[0]) and "buffer overrun" in str(errors[0])
    assert INTS.type in str(errors[0])


async def test_register_while_running_and_clean_shutdown() -> None:
    state, rt = new_runtime()
    first = Counting("first", [Input(NS, INTS.type)])
    rt.register(first)
    q = QIntToStrController()
    async with running(rt):
        await wait_all_tasks_blocked()
        rt.register(q)
        rt.register(SumController("late", "sums", "total"))
        await state.create(int_res("x", 3))
        await state.create(int_res("y", 4, ns="late"))
        await assert_resources(state, STRS, ["x"], lambda r: r.spec.value == "3")
        await assert_resources(state, INTS._replace(namespace="sums"), ["total"], lambda r: r.spec.value == 4)
        with pytest.raises(RuntimeError, match="already running"):
            await rt.run()
        assert not first.stopped
    # leaving `running` cancelled run(): every controller stopped inside its own code
    assert first.stopped


async def test_shared_output_controllers_coexist() -> None:
    state, rt = new_runtime()

    class Writer(Controller):
        def __init__(self, name: str) -> None:
            self.name = name

        def inputs(self) -> Sequence[Input]:
            return []

        def outputs(self) -> Sequence[Output]:
            return [Output(INTS.type, OutputKind.SHARED)]

        async def run(self, rt: ControllerRuntime) -> None:
            await rt.wait()
            await rt.create(int_res(self.name, 1, ns="shared"))

    rt.register(Writer("w1"))
    rt.register(Writer("w2"))
    async with running(rt):
        found = await assert_resources(state, INTS._replace(namespace="shared"), ["w1", "w2"])
    assert {r.metadata.owner for r in found.values()} == {"w1", "w2"}


async def test_bulk_writes_of_one_cycle_do_not_overrun_the_runtime_watch() -> None:
    # machined's history: 8 growing to 1024 events per kind. One cycle writes 3000 outputs of a
    # kind the runtime watches (DestroyReady on its own outputs); store writes never yield, so
    # the adapter must let the watches catch up now and then.
    state = InMemoryState(history_initial=8, history_max=1024, history_gap=4)
    rt = Runtime(state, backoff_initial=0.01)

    class Bulk(Controller):
        name = "Bulk"

        def inputs(self) -> Sequence[Input]:
            return [Input(NS, STRS.type, None, InputKind.DESTROY_READY)]

        def outputs(self) -> Sequence[Output]:
            return [Output(STRS.type)]

        async def run(self, rt: ControllerRuntime) -> None:
            await rt.wait()
            for i in range(3000):
                await rt.create(str_res(f"s{i:04}"))
            await anyio.sleep_forever()

    rt.register(Bulk())
    errors: list[BaseException] = []

    async def run() -> None:
        try:
            await rt.run()
        except RuntimeWatchError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await assert_resources(state, STRS, ["s2999"], timeout=10)
        await wait_all_tasks_blocked()
        assert errors == []
        tg.cancel_scope.cancel()


class BrokenStreamState(InMemoryState):
    """An in-memory state whose kind watches break after bootstrap, as a remote stream might."""

    def watch_kind_aggregated(self, kind: Any, **options: Any) -> Any:
        inner = super().watch_kind_aggregated(kind, **options)

        @asynccontextmanager
        async def broken() -> AsyncIterator[AsyncIterator[list[Any]]]:
            async with inner as batches:

                async def gen() -> AsyncIterator[list[Any]]:
                    yield await anext(batches)
                    raise ConnectionResetError("stream reset by peer")

                yield gen()

        return broken()


async def test_watch_exception_aborts_runtime_with_clear_error() -> None:
    rt = Runtime(BrokenStreamState(), backoff_initial=0.01)
    rt.register(Counting("c", [Input(NS, INTS.type)]))
    with anyio.fail_after(5), pytest.raises(RuntimeWatchError, match="ConnectionResetError: stream reset by peer"):
        await rt.run()
