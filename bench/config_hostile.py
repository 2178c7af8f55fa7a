"""Benchmark of hostile config input (issue 16 part 1 figures).

1. Fuzz: the hypothesis strategies of tests/machineconfig/hostile.py (bytes, YAML trees,
   alias graphs, deep nesting, huge scalars, type-confused valid configs) through every config
   entry point; prints cases run and unexpected exceptions (target 0).
2. Event-loop hold: a node in maintenance mode (ConfigManager + MachineService over real
   mutual TLS on loopback, in this process) is sent each of the worst inputs the limits let
   through; a ticker task (1 ms sleeps) records the longest gap of the event loop and a
   concurrent COSI Get its latency, while the node rejects the input. Baselines in the same
   run: the loop idle, and the node answering a dry run of a normal generated config.
   Medians over RUNS runs (target: hostile hold < 100 ms).

Also printed: the load average and a calibration loop (a fixed pure-Python workload timed
the same way each run), since the machine is shared: read the holds relative to those.

Run: python -m bench.config_hostile [fuzz-examples]
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import structlog
from hypothesis import HealthCheck, given, settings

from kos.apis import auth
from kos.apis.client import APIError, Connection, GrpcState
from kos.apis.gen.kos import machine as pb
from kos.apis.server.machine import MachineService
from kos.controllers.config.api import ManagedConfigStore
from kos.resources.config import MACHINE_TYPE_ID, MachineTypeSpec
from kos.resources.core import Pointer
from tests.config.helpers import node
from tests.machineconfig.hostile import CONFIG_ERRORS, base_configs, exercise, hostile_inputs, worst_inputs
from tests.support.loopback import serve_state

APPLY = auth.MACHINE + "ApplyConfiguration"
RUNS = 5


def calibration() -> float:
    """Seconds for a fixed pure-Python workload (median of 5)."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        sum(i * i for i in range(300_000))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fuzz(examples: int) -> tuple[int, list[str]]:
    ran = 0
    unexpected: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(hostile_inputs)
    def one(data: str | bytes) -> None:
        nonlocal ran
        ran += 1
        try:
            exercise(data)
        except CONFIG_ERRORS:
            pass
        except Exception as exc:
            unexpected.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    one()
    return ran, unexpected


async def measure(conn: Connection, data: bytes, dry_run: bool) -> tuple[float, float, float, str]:
    """(longest loop gap, longest Get latency, request seconds, outcome) for one apply."""
    st = GrpcState(conn)
    ptr = Pointer("config", MachineTypeSpec.definition.type, MACHINE_TYPE_ID)
    await st.get(ptr)
    gaps: list[float] = []
    gets: list[float] = []
    outcome: list[str] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while not outcome:
            await anyio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last - 0.001)
            last = now

    async def getter() -> None:
        while not outcome:
            t0 = time.perf_counter()
            await st.get(ptr)
            gets.append(time.perf_counter() - t0)
            await anyio.sleep(0.005)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(getter)
        await anyio.sleep(0.01)
        try:
            req = pb.ApplyConfigurationRequest(data=data, dry_run=dry_run)
            await conn.unary(APPLY, bytes(req))
            outcome.append("accepted")
        except APIError as exc:
            outcome.append(f"{exc.status.name} ({len(exc.message)} chars)")
    return max(gaps, default=0.0), max(gets, default=0.0), time.perf_counter() - t0, outcome[0]


async def idle(conn: Connection, seconds: float) -> tuple[float, float]:
    st = GrpcState(conn)
    ptr = Pointer("config", MachineTypeSpec.definition.type, MACHINE_TYPE_ID)
    gaps, gets = [], []
    end = time.perf_counter() + seconds
    last = time.perf_counter()
    while time.perf_counter() < end:
        await anyio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last - 0.001)
        last = now
        t0 = time.perf_counter()
        await st.get(ptr)
        gets.append(time.perf_counter() - t0)
        last = time.perf_counter()
    return max(gaps), max(gets)


async def event_loop(runs: int) -> dict[str, list[tuple[float, float, float, str]]]:
    cp, _ = base_configs()
    inputs: dict[str, tuple[bytes, bool]] = {"baseline: dry run of a valid config": (cp.encode(), True)}
    inputs.update({name: (text.encode(), False) for name, text in worst_inputs().items()})
    out: dict[str, list[tuple[float, float, float, str]]] = {name: [] for name in ["baseline: idle", *inputs]}
    with tempfile.TemporaryDirectory(prefix="kos-bench-hostile-") as tmp:
        async with node(Path(tmp), secrets=True) as (state, manager):
            machine = MachineService(config=ManagedConfigStore(manager), maintenance=True)
            async with serve_state(state, machine=machine) as api, api.connect([auth.ADMIN]) as conn:
                for _ in range(runs):
                    gap, get = await idle(conn, 1.0)
                    out["baseline: idle"].append((gap, get, 1.0, "-"))
                    for name, (data, dry) in inputs.items():
                        out[name].append(await measure(conn, data, dry))
                assert manager.maintenance
    return out


def main() -> None:
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    cal = calibration()
    print(f"calibration loop: {cal * 1000:.1f} ms")
    t0 = time.perf_counter()
    ran, unexpected = fuzz(examples)
    print(f"fuzz: {ran} cases through load/validate/output/diff/views/patch in {time.perf_counter() - t0:.0f} s; "
          f"unexpected exceptions: {len(unexpected)} (target 0)")
    for u in unexpected[:10]:
        print(f"  {u}")
    results: Any = anyio.run(event_loop, RUNS)
    print(f"\nevent-loop hold while a maintenance-mode node answers ApplyConfiguration (medians of {RUNS}):")
    print(f"{'input':42} {'loop hold':>10} {'Get max':>9} {'request':>9}  answer")
    for name, rows in results.items():
        hold = statistics.median(r[0] for r in rows) * 1000
        get = statistics.median(r[1] for r in rows) * 1000
        req = statistics.median(r[2] for r in rows)
        print(f"{name:42} {hold:8.1f}ms {get:7.1f}ms {req:8.2f}s  {rows[-1][3]}")
    worst = max(statistics.median(r[0] for r in rows) for name, rows in results.items() if "baseline" not in name)
    base = statistics.median(r[0] for r in results["baseline: dry run of a valid config"])
    print(f"\nworst-case hostile loop hold {worst * 1000:.1f} ms (target < 100 ms); "
          f"valid-config baseline {base * 1000:.1f} ms; ratio {worst / base if base else float('inf'):.1f}x; "
          f"calibration {cal * 1000:.1f} ms; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
