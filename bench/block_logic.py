"""Benchmark: the pure block logic (no devices): selector compile and evaluation, the
partition planner, and the GPT builder. ``python bench/block_logic.py``; prints medians."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

from kos.controllers.block.planner import MiB, VolumeRequest, plan, system_layout
from kos.controllers.block.selector import compile_disk_selector
from kos.platform.block import gpt

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]

EXPR = '(disk.size >= 100GB && !disk.rotational && disk.transport == "nvme") || disk.model =~ "WDC*"'
DISK = {"size": 512 * 10**9, "rotational": False, "transport": "nvme", "model": "Samsung SSD 980"}


def per_op(fn: Callable[[], object], n: int, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def main() -> None:
    print(conditions("block_logic start"), flush=True)
    sel = compile_disk_selector(EXPR)
    print(f"selector compile: {per_op(lambda: compile_disk_selector(EXPR), 2000) * 1e6:.1f} us/op (median)")
    print(f"selector evaluate: {per_op(lambda: sel.matches(DISK), 100000) * 1e9:.0f} ns/op (median)")
    layout = system_layout()
    print(f"plan system layout: {per_op(lambda: plan(1 << 40, layout), 5000) * 1e6:.1f} us/op (median)")
    users = [VolumeRequest(f"U{i}", (i + 1) * 64 * MiB, grow=i % 3 == 0) for i in range(16)]
    print(f"plan 16 user volumes: {per_op(lambda: plan(1 << 40, users), 2000) * 1e6:.1f} us/op (median)")
    first, _ = gpt.usable_lbas(1 << 40)
    linux = "0fc63daf-8483-4772-8e79-3d69d8477de4"
    entries = [
        gpt.GptEntry(i + 1, first + i * 2048, first + i * 2048 + 2047, linux, str(uuid.uuid4()), f"P{i}")
        for i in range(16)
    ]
    guid = str(uuid.uuid4())
    build = per_op(lambda: gpt.build(1 << 40, guid, entries), 2000)
    print(f"GPT build, 16 partitions: {build * 1e6:.1f} us/op (median)")


if __name__ == "__main__":
    main()
