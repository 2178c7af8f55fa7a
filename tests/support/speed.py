"""How fast this machine is right now, for waits that must follow it.

A timeout written on one machine fails on one several times slower (TCG VMs, a busy CI
runner). ``slowdown()`` times a fixed pure-Python loop (median of 5) against the time it
took on the machine the timeouts were written on (``REFERENCE_MS``) and ``scaled(seconds)``
stretches a wait by that factor (never shrinks it). Only how long a test waits changes, never
what it checks. ``KOS_TEST_SLOWDOWN`` overrides the measurement.
"""

from __future__ import annotations

import functools
import os
import statistics
import time

REFERENCE_MS = 40.0
"""The calibration loop on the machine the VM tests were written on (quiet, 2 cores)."""


def calibration_ms() -> float:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        x = 0
        for i in range(500_000):
            x += i * i
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


@functools.lru_cache(maxsize=1)
def slowdown() -> float:
    forced = os.environ.get("KOS_TEST_SLOWDOWN")
    if forced:
        return max(1.0, float(forced))
    return max(1.0, calibration_ms() / REFERENCE_MS)


def scaled(seconds: float) -> float:
    return seconds * slowdown()
