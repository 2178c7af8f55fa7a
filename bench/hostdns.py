"""Benchmark: the host DNS cache (``kos.platform.network.dnsserver``), real kernel, needs root
and Debian's dnsmasq.

In a private network namespace (the benchmark re-runs itself inside it, so the cache opens its
sockets directly, as machined does in a node's own namespace), dnsmasq on 127.0.0.2 answers
``*.bench.test``; the cache listens on 127.0.0.53 and forwards to it. A client process (one
query at a time, UDP) measures per-query latency for:

* baseline: dnsmasq asked directly (a C server, no cache in between);
* hit: the same name through the cache (answered from the cache);
* miss: a new name each time through the cache (forwarded to dnsmasq, then cached).

Prints medians (and p90) in microseconds, the ratios to the baseline, queries per second of
the hit loop, the load average and a calibration loop. ``python bench/hostdns.py [queries]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import anyio

from kos.platform.network.dnsserver import HostDNSServer

try:
    from bench.calibrate import beside, conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import beside, conditions  # type: ignore[no-redef]

CLIENT = r"""
import json, random, socket, struct, sys, time
server, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def q(name, i):
    out = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((server, 53))
lat = []
t_all = time.perf_counter()
for i in range(n):
    name = "same.bench.test" if mode == "same" else f"n{i}-{random.randrange(1 << 30)}.bench.test"
    t0 = time.perf_counter()
    s.send(q(name, i & 0xFFFF))
    data = s.recv(4096)
    lat.append(time.perf_counter() - t0)
    assert struct.unpack("!H", data[:2])[0] == i & 0xFFFF and struct.unpack("!H", data[6:8])[0] >= 1, data
print(json.dumps({"lat": lat, "total": time.perf_counter() - t_all}))
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def stats(lat: list[float]) -> tuple[float, float]:
    s = sorted(lat)
    return 1e6 * s[len(s) // 2], 1e6 * s[int(len(s) * 0.9)]


async def client(server: str, mode: str, n: int) -> dict[str, object]:
    proc = await anyio.run_process([sys.executable, "-c", CLIENT, server, mode, str(n)], check=True)
    out: dict[str, object] = json.loads(proc.stdout)
    return out


async def main(n: int) -> None:
    """Runs inside the benchmark's network namespace, dnsmasq already up."""
    server = HostDNSServer(listen=[("127.0.0.53", 53)], upstreams=[("127.0.0.2", 53)],
                           cache_size=max(4096, 2 * n))
    print(conditions("hostdns start"), flush=True)
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: server.serve(task_status=task_status))
        await client("127.0.0.2", "same", 50)  # warm up both
        await client("127.0.0.53", "same", 50)
        rows = {}
        for label, target, mode in (("baseline: dnsmasq directly", "127.0.0.2", "same"),
                                    ("hit: through the cache", "127.0.0.53", "same"),
                                    ("miss: forwarded by the cache", "127.0.0.53", "new")):
            r = await client(target, mode, n)
            lat = r["lat"]
            assert isinstance(lat, list) and isinstance(r["total"], float)
            rows[label] = (*stats(lat), n / r["total"])
            print(f"{label:32s} median {rows[label][0]:7.0f} us  p90 {rows[label][1]:7.0f} us  "
                  f"{rows[label][2]:7.0f} q/s  {beside()}", flush=True)
        base = rows["baseline: dnsmasq directly"][0]
        for label in ("hit: through the cache", "miss: forwarded by the cache"):
            print(f"{label}: {rows[label][0] / base:.2f}x the baseline median")
        print(f"cache: {len(server.cache)} entries, {server.stats.cache_hits} hits, "
              f"{server.stats.forwarded} forwarded")
        tg.cancel_scope.cancel()
    print(conditions("hostdns end"), flush=True)


def inside(n: int) -> None:
    sh("ip", "link", "set", "lo", "up")
    dnsmasq = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                                "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.2", "--port=53",
                                "--local-ttl=300", "--pid-file=", "--user=root", "--address=/bench.test/192.0.2.80"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        anyio.run(main, n)
    finally:
        dnsmasq.terminate()
        dnsmasq.wait(5)


def outside(n: int) -> None:
    ns = f"kos-bench-dns-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        subprocess.run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, os.path.abspath(__file__), str(n),
                        "--inside"], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    if "--inside" in sys.argv:
        inside(count)
    else:
        outside(count)
