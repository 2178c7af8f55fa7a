"""A node probes a service fast until it is healthy, then at ``healthy_interval``; a failure
switches back to the fast interval (real process under the supervisor)."""

from __future__ import annotations

import itertools
import sys
import time

import anyio
import pytest

from kos.machined.services import HealthCheck, ProcessRunner, ServiceDefinition, Supervisor

pytestmark = pytest.mark.anyio


async def test_probe_slows_down_once_healthy_and_speeds_up_on_failure() -> None:
    calls: list[float] = []
    healthy_after, fail_from = 3, 6
    enough = anyio.Event()

    async def probe() -> None:
        calls.append(time.monotonic())
        n = len(calls)
        if n >= fail_from + 3:
            enough.set()
        if n < healthy_after or n >= fail_from:
            raise RuntimeError(f"probe {n} fails")

    hc = HealthCheck(probe, interval=0.05, healthy_interval=1.0)
    async with Supervisor(None, cgroup_parent="kos-test-health-interval") as sup:
        sup.add(ServiceDefinition("sleeper", ProcessRunner([sys.executable, "-c", "import time; time.sleep(60)"]),
                                  health=hc))
        await sup.start("sleeper")
        with anyio.fail_after(20):
            await enough.wait()
        await sup.stop("sleeper")
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    fast_before = gaps[: healthy_after - 1]
    slow_while_healthy = gaps[healthy_after - 1 : fail_from - 1]
    fast_after_failure = gaps[fail_from - 1 : fail_from + 1]
    assert min(slow_while_healthy) >= 0.95, gaps  # never probed faster than healthy_interval when healthy
    assert max(fast_before + fast_after_failure) < min(slow_while_healthy), gaps


def test_healthy_interval_must_be_positive() -> None:
    async def probe() -> None:
        return None

    with pytest.raises(ValueError, match="healthy_interval must be positive, got 0"):
        HealthCheck(probe, healthy_interval=0)
