"""A runnable demonstration of the store and the controller runtime (``python -m kos.machined.demo``).

It builds an in-memory state, publishes the meta namespace, runs two small controllers
(``DemoWorkloads`` -> ``DemoPlacements`` by a transform, and a summary over all placements) and
prints every event of the outputs while it creates, changes, tears down and destroys inputs,
then prints the dependency graph and the runtime metrics. It is the main job until local
clusters (``kosctl cluster create``) are assembled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from kos.controllers.runtime import Controller, Input, InputKind, Output, Runtime, transform
from kos.controllers.runtime.access import Access
from kos.controllers.runtime.adapter import ControllerRuntime
from kos.controllers.runtime.testing import assert_resources
from kos.resources.core import Kind
from kos.resources.core.definition import resource_type
from kos.resources.core.inmem import InMemoryState
from kos.resources.core.meta import publish_meta
from kos.resources.core.resource import Resource
from kos.resources.core.spec import Spec, spec_field

NS = "demo"


@resource_type("DemoWorkloads.demo.kos.dev", namespace=NS, print_columns=[("Replicas", "{.replicas}")])
@dataclass
class WorkloadSpec(Spec):
    image: str = spec_field(1, default="")
    replicas: int = spec_field(2, default=1)


@resource_type("DemoPlacements.demo.kos.dev", namespace=NS)
@dataclass
class PlacementSpec(Spec):
    image: str = spec_field(1, default="")
    nodes: list[str] = spec_field(2, default_factory=list)


@resource_type("DemoSummaries.demo.kos.dev", namespace=NS)
@dataclass
class SummarySpec(Spec):
    workloads: int = spec_field(1, default=0)
    replicas: int = spec_field(2, default=0)


NODES = ["cp-1", "cp-2", "cp-3", "w-1"]


def place(rt: Access, inp: Resource[Any], out: Resource[Any]) -> None:
    out.spec.image = inp.spec.image
    out.spec.nodes = [NODES[i % len(NODES)] for i in range(inp.spec.replicas)]


class SummaryController(Controller):
    name = "demo.SummaryController"

    def inputs(self) -> list[Input]:
        return [Input(NS, PlacementSpec.definition.type, kind=InputKind.WEAK)]

    def outputs(self) -> list[Output]:
        return [Output(SummarySpec.definition.type)]

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            placements = await rt.list(Kind(NS, PlacementSpec.definition.type))

            def fill(r: Resource[Any], placements: list[Resource[Any]] = placements) -> None:
                r.spec.workloads = len(placements)
                r.spec.replicas = sum(len(p.spec.nodes) for p in placements)

            await rt.modify(Resource.new(SummarySpec(), "cluster"), fill)


async def watch_outputs(state: InMemoryState, out: list[str]) -> None:
    async def one(kind: Kind) -> None:
        async with state.watch_kind(kind) as events:
            async for ev in events:
                r = ev.resource
                assert r is not None
                out.append(f"{ev.type!s:<10} {r.metadata.type:<28} {r.id:<8} v{r.metadata.version}  {r.spec.to_yaml()}")
                print(out[-1])

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, Kind(NS, PlacementSpec.definition.type))
        tg.start_soon(one, Kind(NS, SummarySpec.definition.type))


async def demo() -> int:
    state = InMemoryState()
    await publish_meta(state)
    runtime = Runtime(state)
    runtime.register(transform("demo.PlacementController", WorkloadSpec, PlacementSpec, place))
    runtime.register(SummaryController())
    lines: list[str] = []
    placements = Kind(NS, PlacementSpec.definition.type)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        tg.start_soon(watch_outputs, state, lines)
        await anyio.sleep(0.05)
        print("== create two workloads")
        await state.create(Resource.new(WorkloadSpec("nginx:1.27", 3), "web"))
        await state.create(Resource.new(WorkloadSpec("redis:7", 1), "cache"))
        await assert_resources(state, placements, ["web", "cache"], lambda r: len(r.spec.nodes) > 0)
        print("== scale web to 5")
        await state.update_with_conflicts(
            Resource.new(WorkloadSpec(), "web").pointer, lambda r: setattr(r.spec, "replicas", 5)
        )
        await assert_resources(state, placements, ["web"], lambda r: len(r.spec.nodes) == 5)
        print("== tear down and destroy cache")
        await state.teardown_and_destroy(Resource.new(WorkloadSpec(), "cache").pointer)
        summaries = Kind(NS, SummarySpec.definition.type)
        await assert_resources(state, summaries, ["cluster"], lambda r: r.spec.workloads == 1 and r.spec.replicas == 5)
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    print("== dependency graph (dot)")
    print(runtime.dependency_dot())
    print("== metrics")
    for name, m in sorted(runtime.metrics().items()):
        print(f"{name}: {m}")
    rds = await state.list(Kind("meta", "ResourceDefinitions.meta.cosi.dev"))
    print(f"== {len(rds)} resource definitions published in the meta namespace")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="kos-demo", description=__doc__.split("\n\n")[0] if __doc__ else "").parse_args(argv)
    return anyio.run(demo)


if __name__ == "__main__":
    sys.exit(main())
