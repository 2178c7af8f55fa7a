"""The sequencer on an in-memory state: phases in order with concurrent tasks, every step an
event, MachineStatus stage/phase/ready, failure naming the task, preemption and refusal."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from kos.apis.server.machine import EventBus
from kos.controllers.runtime.testing import assert_resources
from kos.machined.sequencer import (
    Phase,
    Sequence,
    SequenceBusyError,
    SequenceError,
    Sequencer,
    phases,
    service_unmet,
)
from kos.resources.core import InMemoryState, Resource
from kos.resources.runtime import MACHINE_STATUSES, SERVICES, ServiceSpec

pytestmark = pytest.mark.anyio


def _events(bus: EventBus) -> list[str]:
    out = []
    for r in bus.history:
        import yaml

        p = yaml.safe_load(r.payload)
        if r.type in ("sequence", "phase", "task"):
            name = p.get("task") or p.get("phase") or p.get("sequence")
            out.append(f"{r.type}:{name}:{p['action']}" + (":error" if "error" in p else ""))
    return out


async def test_phases_run_in_order_tasks_concurrently_and_are_reported() -> None:
    state = InMemoryState()
    bus = EventBus()
    seq = Sequencer(state, bus)
    log: list[str] = []
    both_started = anyio.Event()
    started: set[str] = set()

    def task(name: str) -> Any:
        async def fn() -> None:
            log.append(f"start {name}")
            started.add(name)
            if {"a", "b"} <= started:
                both_started.set()
            if name in ("a", "b"):
                with anyio.fail_after(5):
                    await both_started.wait()  # a and b overlap: same phase, concurrent
            log.append(f"end {name}")

        return fn

    boot = Sequence(
        "boot", "booting",
        phases(("one", [("a", task("a")), ("b", task("b"))]), ("two", [("c", task("c"))])),
        final_stage="running",
    )  # fmt: skip
    await seq.run(boot)
    assert log.index("start c") > max(log.index("end a"), log.index("end b"))
    assert _events(bus)[0] == "sequence:boot:start" and _events(bus)[-1] == "sequence:boot:stop"
    assert "phase:one:start" in _events(bus) and "task:c:stop" in _events(bus)
    st = await assert_resources(state, MACHINE_STATUSES, ["machine"], lambda r: r.spec.stage == "running")
    assert st["machine"].spec.phase == "" and st["machine"].metadata.owner == "sequencer"


async def test_failed_task_stops_the_sequence_and_names_itself() -> None:
    state = InMemoryState()
    bus = EventBus()
    seq = Sequencer(state, bus)
    ran: list[str] = []

    async def bad() -> None:
        raise OSError("disk on fire")

    async def later() -> None:
        ran.append("later")

    s = Sequence("install", "installing", (Phase.of("format", ("mkfs", bad)), Phase.of("after", ("x", later))))
    with pytest.raises(SequenceError, match="phase format: task mkfs: disk on fire") as info:
        await seq.run(s)
    assert info.value.task == "mkfs" and ran == []
    assert "task:mkfs:stop:error" in _events(bus) and _events(bus)[-1] == "sequence:install:stop:error"
    assert seq.running is None  # the next sequence may run
    await seq.run(Sequence("boot", "booting", ()))


async def test_reboot_preempts_boot_and_other_overlaps_are_refused() -> None:
    state = InMemoryState()
    seq = Sequencer(state, EventBus())
    blocked = anyio.Event()

    async def forever() -> None:
        blocked.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(seq.run, Sequence("boot", "booting", (Phase.of("wait", ("forever", forever)),)))
        await blocked.wait()
        with pytest.raises(SequenceBusyError, match="'install' refused: sequence 'boot' is running"):
            await seq.run(Sequence("install", "installing", ()))
        await seq.run(Sequence("reboot", "rebooting", ()))
    assert seq.stage == "rebooting"


@pytest.mark.parametrize(("spec", "unmet"), [
    (ServiceSpec(state="Waiting"), None),
    (ServiceSpec(state="Waiting", message="waiting for etcd"), "Waiting: waiting for etcd"),
    (ServiceSpec(state="Running", running=True, healthy=True, unknown=False), None),
    (ServiceSpec(state="Running", running=True, unknown=True), None),
    (ServiceSpec(state="Running", running=True, unknown=False, message="no leader"), "unhealthy: no leader"),
    (ServiceSpec(state="Failed", message="exit 1"), "Failed: exit 1"),
    (ServiceSpec(state="Finished"), None),
])  # fmt: skip
async def test_service_readiness_rules(spec: ServiceSpec, unmet: str | None) -> None:
    assert service_unmet(spec) == unmet


async def test_readiness_lists_unmet_conditions_until_met() -> None:
    state = InMemoryState()
    seq = Sequencer(state, EventBus())
    await state.create(Resource.new(ServiceSpec(state="Starting"), "etcd"), owner="supervisor")
    await state.create(Resource.new(ServiceSpec(state="Waiting"), "idle"), owner="supervisor")  # never started
    async with anyio.create_task_group() as tg:
        tg.start_soon(seq.readiness_loop)
        await seq.run(Sequence("boot", "booting", (), final_stage="running"))
        seq.set_condition("controllers network", "kos.controllers.network.assembly is missing")
        got = await assert_resources(
            state, MACHINE_STATUSES, ["machine"], lambda r: len(r.spec.unmet_conditions) == 2
        )
        names = [c.name for c in got["machine"].spec.unmet_conditions]
        assert names == ["service etcd", "controllers network"] and not got["machine"].spec.ready
        seq.set_condition("controllers network", None)

        def up(r: Resource[Any]) -> None:
            r.spec = ServiceSpec(state="Running", running=True, healthy=True, unknown=False)

        await state.update_with_conflicts(SERVICES.pointer("etcd"), up, owner="supervisor")
        await assert_resources(
            state, MACHINE_STATUSES, ["machine"], lambda r: r.spec.ready and not r.spec.unmet_conditions
        )
        tg.cancel_scope.cancel()
