"""Benchmark of the in-memory resource store (issue 2 figures).

Prints: creates/s and updates/s with no watchers; updates/s with 10 WatchKind watchers each
receiving every event; watch delivery latency p50/p99 (1 and 10 watchers); RSS for 100k
small resources. Each figure is the median of several runs, printed with the load average
and a calibration loop measured right after it. Run: python -m bench.store
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.calibrate import beside, conditions
from kos.resources.core import InMemoryState, Kind, Resource, Spec, resource_type, spec_field


@resource_type("BenchItems.bench.kos.dev", namespace="bench")
@dataclass
class BenchSpec(Spec):
    value: int = spec_field(1, default=0)
    name: str = spec_field(2, default="")


KIND = Kind("bench", BenchSpec.definition.type)
RUNS = 5


def median(xs: list[float]) -> float:
    return statistics.median(xs)


async def creates_per_s(n: int) -> float:
    state = InMemoryState()
    items = [Resource.new(BenchSpec(i, f"item-{i}"), f"r{i}") for i in range(n)]
    t0 = time.perf_counter()
    for r in items:
        await state.create(r)
    return n / (time.perf_counter() - t0)


async def updates_per_s(n: int) -> float:
    state = InMemoryState()
    r = Resource.new(BenchSpec(0, "x"), "r")
    await state.create(r)
    t0 = time.perf_counter()
    for i in range(n):
        r.spec.value = i
        await state.update(r)
    return n / (time.perf_counter() - t0)


async def updates_with_watchers(n: int, watchers: int) -> float:
    """Updates/s while `watchers` WatchKind watchers each receive every event."""
    state = InMemoryState()
    ids = [f"r{i}" for i in range(10)]
    objs = [Resource.new(BenchSpec(0, "x"), id) for id in ids]
    for r in objs:
        await state.create(r)
    received = [0] * watchers
    ready = asyncio.Event()
    started = 0

    async def watcher(k: int) -> None:
        nonlocal started
        async with state.watch_kind_aggregated(KIND) as batches:
            started += 1
            if started == watchers:
                ready.set()
            async for batch in batches:
                for ev in batch:
                    assert ev.type != 4, ev.error  # never overrun
                received[k] += len(batch)
                if received[k] >= n:
                    return

    tasks = [asyncio.create_task(watcher(k)) for k in range(watchers)]
    await ready.wait()
    t0 = time.perf_counter()
    for i in range(n):
        r = objs[i % 10]
        r.spec.value = i
        await state.update(r)
        if i % 256 == 255:
            await asyncio.sleep(0)  # let watchers drain (the history ring holds 1024)
    await asyncio.gather(*tasks)
    return n / (time.perf_counter() - t0)


async def delivery_latency(samples: int, watchers: int) -> tuple[float, float]:
    state = InMemoryState()
    r = Resource.new(BenchSpec(0, "x"), "r")
    await state.create(r)
    sent: dict[int, float] = {}
    lat: list[float] = []
    ready = asyncio.Event()
    started = 0

    async def watcher(k: int) -> None:
        nonlocal started
        async with state.watch_kind(KIND) as events:
            started += 1
            if started == watchers:
                ready.set()
            async for ev in events:
                now = time.perf_counter()
                lat.append(now - sent[ev.resource.spec.value])
                if ev.resource.spec.value == samples - 1:
                    return

    tasks = [asyncio.create_task(watcher(k)) for k in range(watchers)]
    await ready.wait()
    for i in range(samples):
        r.spec.value = i
        sent[i] = time.perf_counter()
        await state.update(r)
        await asyncio.sleep(0.0002)
    await asyncio.gather(*tasks)
    q = statistics.quantiles(lat, n=100)
    return q[49] * 1000, q[98] * 1000


RSS_CHILD = """
import asyncio, gc, sys
sys.path.insert(0, %r)
from bench.store import BenchSpec
from kos.resources.core.inmem import InMemoryState
from kos.resources.core.resource import Resource
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
async def main():
    state = InMemoryState()
    gc.collect(); before = rss()
    for i in range(100_000):
        await state.create(Resource.new(BenchSpec(i, f"item-{i}"), f"r{i:06}", labels={"app": "bench"}))
    gc.collect(); after = rss()
    print(before, after)
asyncio.run(main())
"""


def rss_100k() -> tuple[float, float]:
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", RSS_CHILD % root], capture_output=True, text=True, check=True)
    before, after = map(float, out.stdout.split())
    return after, after - before


async def main() -> None:
    print(conditions("before"))
    gc.collect()
    c = median([await creates_per_s(50_000) for _ in range(RUNS)])
    c_at = beside()
    u = median([await updates_per_s(100_000) for _ in range(RUNS)])
    u_at = beside()
    w = median([await updates_with_watchers(50_000, 10) for _ in range(RUNS)])
    w_at = beside()
    l1 = [await delivery_latency(2000, 1) for _ in range(3)]
    l1_at = beside()
    l10 = [await delivery_latency(2000, 10) for _ in range(3)]
    l10_at = beside()
    rss, delta = rss_100k()
    rss_at = beside()
    print(f"creates/s (no watchers):                 {c:>10,.0f}   {c_at}")
    print(f"updates/s (no watchers):                 {u:>10,.0f}   target >= 150,000   {u_at}")
    print(f"updates/s (10 WatchKind watchers):       {w:>10,.0f}   target >= 50,000   {w_at}")
    print(f"delivery latency, 1 watcher  p50 / p99:  {median([x[0] for x in l1]):.3f} / "
          f"{median([x[1] for x in l1]):.3f} ms   {l1_at}")
    print(f"delivery latency, 10 watchers p50 / p99: {median([x[0] for x in l10]):.3f} / "
          f"{median([x[1] for x in l10]):.3f} ms   target p99 <= 2 ms   {l10_at}")
    print(f"RSS with 100k small resources:           {rss:.1f} MiB (store: +{delta:.1f} MiB)   target <= 150 MiB"
          f"   {rss_at}")
    print("(10 resources x 2000 updates through a transform controller: bench/runtime_pipeline.py)")
    print("[load L, calibration C ms]: the 1-minute load average and a fixed pure-Python loop's time right after"
          " the figure (bench/calibrate.py): a figure taken at twice the calibration time is not a slower store")

if __name__ == "__main__":
    asyncio.run(main())
