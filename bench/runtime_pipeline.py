"""Benchmark: 10 IntResources x 2000 update_with_conflicts rounds flowing through a transform
controller (int -> str) on the in-memory state with Talos's history (8/1024/4).

Prints, as medians over --repeat runs (each with the load average and a calibration loop
measured right after, bench/calibrate.py): total time until every output equals its input,
updates/s, reconciles of the transform (coalescing makes this far below 20000), and the
runtime's delivered (deduplicated) changes. The producer yields to the event loop once per
round (10 updates), as any real writer awaiting I/O would, and again once per 50 rounds
(500 updates: still inside the 1024-event history) to show coalescing.

    python -m bench.runtime_pipeline [--resources 10] [--rounds 2000] [--repeat 5] [--yield-every 1 50]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from bench.calibrate import beside, conditions
from kos.controllers.runtime import Runtime, transform
from kos.controllers.runtime.testing import assert_resources
from kos.resources.core import InMemoryState, Kind, Pointer, Resource, Spec, resource_type, spec_field

NS = "bench"


@resource_type("BenchInts.bench.kos.dev", namespace=NS)
@dataclass
class BenchIntSpec(Spec):
    value: int = spec_field(1, default=0)


@resource_type("BenchStrs.bench.kos.dev", namespace=NS)
@dataclass
class BenchStrSpec(Spec):
    value: str = spec_field(1, default="")


def to_str(rt: Any, inp: Resource[BenchIntSpec], out: Resource[BenchStrSpec]) -> None:
    out.spec.value = str(inp.spec.value)


async def one_run(resources: int, rounds: int, yield_every: int) -> dict[str, float]:
    state = InMemoryState()  # history 8 -> 1024, gap 4 (Talos machined)
    rt = Runtime(state)
    rt.register(transform("IntToStr", BenchIntSpec, BenchStrSpec, to_str))
    ids = [f"r{i}" for i in range(resources)]
    for id in ids:
        await state.create(Resource.new(BenchIntSpec(value=0), id))
    ints = Kind(NS, BenchIntSpec.definition.type)
    strs = Kind(NS, BenchStrSpec.definition.type)
    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.run)
        await assert_resources(state, strs, ids, lambda r: r.spec.value == "0", timeout=10)
        base = rt.metrics()["IntToStr"]["reconciles"]
        delivered0 = rt.delivered
        start = time.perf_counter()
        ptrs = [Pointer(NS, ints.type, id) for id in ids]
        for n in range(1, rounds + 1):
            for ptr in ptrs:
                await state.update_with_conflicts(ptr, lambda r, n=n: setattr(r.spec, "value", n))
            if n % yield_every == 0:
                await anyio.lowlevel.checkpoint()
        produced = time.perf_counter() - start
        final = str(rounds)
        await assert_resources(state, strs, ids, lambda r: r.spec.value == final, timeout=60)
        total = time.perf_counter() - start
        reconciles = rt.metrics()["IntToStr"]["reconciles"] - base
        delivered = rt.delivered - delivered0
        tg.cancel_scope.cancel()
    return {
        "total_s": total,
        "produce_s": produced,
        "updates_per_s": resources * rounds / total,
        "reconciles": reconciles,
        "delivered": delivered,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--yield-every", type=int, nargs="+", default=[1, 50],
                        help="rounds between event-loop yields of the producer (x resources must stay < 1024)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    n = args.resources * args.rounds
    print(conditions("before"))
    for yield_every in args.yield_every:
        runs = [await one_run(args.resources, args.rounds, yield_every) for _ in range(args.repeat)]
        at = beside()
        print(f"runtime pipeline: {args.resources} resources x {args.rounds} rounds = {n} updates, producer yields "
              f"every {yield_every} round(s), {args.repeat} runs (medians)")
        for key, fmt in [("total_s", "{:.3f} s until outputs == inputs"), ("produce_s", "{:.3f} s producing"),
                         ("updates_per_s", "{:,.0f} updates/s end to end"),
                         ("reconciles", "{:.0f} transform reconciles (of {n} updates)"),
                         ("delivered", "{:.0f} deduplicated changes delivered")]:
            med = statistics.median(r[key] for r in runs)
            print(f"  {key:14} " + fmt.format(med, n=n) + f"   {at}")


if __name__ == "__main__":
    anyio.run(main)
