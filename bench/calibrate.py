"""How busy the machine is while a figure is measured: the load average and a calibration loop
(the median wall time of a fixed pure-Python loop on one core), printed beside every figure so
figures from different machines or busy moments can be compared as ratios."""

from __future__ import annotations

import os
import statistics
import time


def calibration_ms(rounds: int = 5) -> float:
    """Median wall time of a fixed pure-Python loop (one core)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        x = 0
        for i in range(1_000_000):
            x += i * i
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def conditions(label: str) -> str:
    """``label: load average L on N cores, calibration loop C ms``."""
    return (f"{label}: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, "
            f"calibration loop {calibration_ms():.0f} ms")


def beside() -> str:
    """A short ``[load L, calibration C ms]`` to print after one figure (measured right now)."""
    return f"[load {os.getloadavg()[0]:.1f}, calibration {calibration_ms(3):.0f} ms]"
