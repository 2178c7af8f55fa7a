"""Benchmark: the supervisor itself, with real processes.

Prints medians of: start -> Running of a process service; stop (SIGTERM) of a sleeping
process; crash -> Running again with a 10 ms backoff; log throughput into a 1 MiB ring
(100 MB from ``yes | head``).

Usage: python bench/services_supervisor.py [--runs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import time

import anyio
import structlog

from kos.machined.services import (
    BackoffPolicy,
    ProcessRunner,
    RestartPolicy,
    ServiceDefinition,
    ServiceState,
    Supervisor,
)
from kos.resources.core import InMemoryState

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]


async def main(runs: int) -> None:
    print(conditions("services_supervisor start"), flush=True)
    starts, stops, restarts, rates = [], [], [], []
    async with Supervisor(InMemoryState()) as sup:
        sup.add(ServiceDefinition("sleeper", ProcessRunner(["sleep", "1000"], stop_timeout=5),
                                  backoff=BackoffPolicy(initial=0.01)))
        for _ in range(runs):
            t0 = time.monotonic()
            await sup.start("sleeper")
            st = await sup.wait_state("sleeper", ServiceState.RUNNING, timeout=10)
            starts.append(time.monotonic() - t0)
            n = st.restarts
            t0 = time.monotonic()
            os.kill(st.pid, signal.SIGKILL)
            await sup.wait_for("sleeper", lambda s, n=n: s.restarts > n and s.state == ServiceState.RUNNING,
                               timeout=10)
            restarts.append(time.monotonic() - t0)
            t0 = time.monotonic()
            await sup.stop("sleeper")
            stops.append(time.monotonic() - t0)
        total = 100_000_000
        for i in range(runs):
            sid = f"flood{i}"
            sup.add(ServiceDefinition(sid, ProcessRunner(["sh", "-c", f"yes 0123456789abcdef | head -c {total}"]),
                                      restart=RestartPolicy.ONCE))
            t0 = time.monotonic()
            await sup.start(sid)
            await sup.wait_state(sid, ServiceState.FINISHED, timeout=60)
            rates.append(total / (time.monotonic() - t0) / 1e6)
            assert sup.log(sid).written == total and len(sup.log(sid)) == 1 << 20
    ms = [("start -> Running", starts), ("crash -> Running again", restarts), ("stop (SIGTERM)", stops)]
    for label, xs in ms:
        print(f"{label:24s} median {statistics.median(xs) * 1000:7.1f} ms (n={len(xs)})")
    rate = statistics.median(rates)
    print(f"{'log ring throughput':24s} median {rate:7.0f} MB/s (100 MB into a 1 MiB ring, n={runs})")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(main, a.runs)
