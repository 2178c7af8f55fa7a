"""Benchmark (issue 6 figures), real kernel in private network namespaces, needs root:

1. config -> kernel: a machine config with 100 addresses and 100 routes on one link is
   stored; time until the kernel (an independent netlink dump, polled every 2 ms) has all of
   them. Target <= 1 s.
2. outside change -> status: ``ip addr add`` (a netlink request from another socket) until the
   ``AddressStatuses`` resource appears in the store (watched, no polling). Target <= 100 ms.

``python bench/network_converge.py [rounds]``; prints medians (and min/max) of the rounds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import anyio
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from kos.controllers.network.assembly import network_controllers
from kos.controllers.runtime import Runtime
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import EventType, InMemoryState, Pointer, Resource
from kos.resources.machineconfig import views  # noqa: F401 (imported before timing, as in machined)
from kos.resources.network import ADDRESS_STATUSES, LINK_STATUSES

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]

N = 100


def config_text() -> str:
    addrs = "\n".join(f"          - 10.{20 + i // 250}.{i % 250}.1/24" for i in range(N))
    routes = "\n".join(
        f"          - network: 172.{16 + i // 250}.{i % 250}.0/24\n            gateway: 10.20.0.254" for i in range(N)
    )
    return f"""\
version: v1alpha1
machine:
  type: worker
  network:
    interfaces:
      - interface: bench0
        addresses:
{addrs}
        routes:
{routes}
"""


def sh(*args: str, check: bool = True) -> None:
    subprocess.run(args, check=check, capture_output=True)


def kernel_counts(ipr: IPRoute, index: int) -> tuple[int, int]:
    a = sum(1 for m in ipr.get_addr(index=index) if m.get_attr("IFA_ADDRESS", "").startswith("10."))
    r = sum(1 for m in ipr.route("dump") if m.get_attr("RTA_GATEWAY") == "10.20.0.254")
    return a, r


async def one_round(name: str) -> tuple[float, float]:
    path = f"/run/netns/{name}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "add", "bench0", "type", "veth", "peer", "name", "benchp")
        sh("ip", "-n", name, "link", "set", "benchp", "up")
        # an independent netlink socket (its own pyroute2 loop, so used from a worker thread)
        ipr = await anyio.to_thread.run_sync(lambda: IPRoute(netns=path))
        index = await anyio.to_thread.run_sync(lambda: ipr.link_lookup(ifname="bench0")[0])
        state = InMemoryState(history_max=8192)
        runtime = Runtime(state, backoff_initial=0.05, backoff_max=0.5)
        with tempfile.TemporaryDirectory() as etc:
            for c in network_controllers(netns=path, etc_dir=etc, manage_hostname=False, container_mode=True):
                runtime.register(c)
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                # wait until the node is idle (loopback configured, statuses published)
                ptr = Pointer(LINK_STATUSES.namespace, LINK_STATUSES.type, "bench0")
                while await state.get_or_none(ptr) is None:  # noqa: ASYNC110 (setup only)
                    await anyio.sleep(0.01)
                await anyio.sleep(0.3)
                t0 = time.perf_counter()
                await state.create(Resource.new(MachineConfigSpec(config=config_text()), ACTIVE_ID,
                                                namespace=CONFIG_NS))
                # the kernel is polled through an independent socket on purpose (2 ms resolution)
                while await anyio.to_thread.run_sync(kernel_counts, ipr, index) != (N, N):  # noqa: ASYNC110
                    await anyio.sleep(0.002)
                converge = time.perf_counter() - t0
                await anyio.sleep(0.3)

                # outside change -> AddressStatus
                latency = -1.0
                async with state.watch_kind_aggregated(ADDRESS_STATUSES, bootstrap_contents=False) as batches:
                    t1 = time.perf_counter()
                    await anyio.to_thread.run_sync(
                        lambda: ipr.addr("add", index=index, address="192.0.2.77", prefixlen=32)
                    )
                    async for batch in batches:
                        if any(ev.type == EventType.CREATED and ev.resource is not None and
                               ev.resource.metadata.id == "bench0/192.0.2.77/32" for ev in batch):
                            latency = time.perf_counter() - t1
                            break
                tg.cancel_scope.cancel()
        await anyio.to_thread.run_sync(ipr.close)
        return converge, latency
    finally:
        sh("ip", "netns", "del", name, check=False)


async def main(rounds: int) -> None:
    print(conditions("network_converge start"), flush=True)
    conv: list[float] = []
    lat: list[float] = []
    for i in range(rounds):
        c, latency = await one_round(f"kos-bench-{os.getpid()}-{i}")
        conv.append(c)
        lat.append(latency)
    print(f"config -> kernel, {N} addresses + {N} routes: median {statistics.median(conv) * 1000:.0f} ms "
          f"(min {min(conv) * 1000:.0f}, max {max(conv) * 1000:.0f}, {rounds} rounds; target <= 1000 ms)")
    print(f"outside 'ip addr add' -> AddressStatus: median {statistics.median(lat) * 1000:.1f} ms "
          f"(min {min(lat) * 1000:.1f}, max {max(lat) * 1000:.1f}; target <= 100 ms)")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 5)
