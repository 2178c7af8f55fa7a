"""Benchmark of the API under hostile input (issue 15 items 1 and 5).

Figures (medians over the run, the machine's load average and a calibration loop beside):

* item 1: a client's ``Get`` latency (p50 / max) while another client repeats the largest
  ``List`` the request limits allow, then the largest ``Watch`` (bootstrap + matching), against
  a kind of 2000 resources; the baseline is the same ``Get`` with no other client, measured in
  the same run. The server runs in a child process (its own event loop), the hostile reader in
  a second one, the measuring client in this process.
* item 5: time until N concurrent watches on ONE client connection are all established (first,
  empty WatchResponse) and until one event reached all of them, for N = 100 (what h2's default
  allowed), 500 and 1000.

Run: python -m bench.api_hostile
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

import anyio

from kos.apis import auth
from kos.apis.client import Connection
from kos.apis.gen.cosi import resource as rpb
from kos.resources.core import InMemoryState, NamespaceSpec, Resource, publish_meta
from tests.support.hostile import NAMESPACE, NS_TYPE, largest_query, list_request, populate, watch_request
from tests.support.loopback import loopback_pki, serve_state

RESOURCES = 2000
SECONDS = 6.0


async def _serve(pipe: Pipe) -> None:
    st = InMemoryState()
    await publish_meta(st)
    await populate(st, RESOURCES)
    async with serve_state(st, writable=[NAMESPACE]) as api:
        pipe.send(api.server.port)
        n = 0
        while True:
            cmd = await anyio.to_thread.run_sync(pipe.recv)
            if cmd == "stop":
                return
            n += 1  # "event": one new resource in the watched namespace
            await st.create(Resource.new(NamespaceSpec(), f"ev-{n}", namespace="events"))
            pipe.send("ok")


def _server_main(pipe: Pipe) -> None:
    anyio.run(_serve, pipe)


def _connect(port: int, roles: tuple[str, ...] = (auth.READER,)) -> Connection:
    pki = loopback_pki()
    return Connection(f"127.0.0.1:{port}", ca=pki.ca.cert_pem, identity=pki.client(roles), timeout=None)


async def _hostile(port: int, what: str, stop: Any, counter: Any) -> None:
    opts = largest_query()
    data = bytes(list_request(opts) if what == "list" else watch_request(opts))
    method = auth.STATE + ("List" if what == "list" else "Watch")
    async with _connect(port) as conn:
        while not stop.is_set():
            async with conn.stream(method, data) as replies:
                async for msg in replies:
                    if what == "watch" and rpb.WatchResponse().parse(msg).event:
                        break
            with counter.get_lock():
                counter.value += 1


def _hostile_main(port: int, what: str, stop: Any, counter: Any) -> None:
    anyio.run(_hostile, port, what, stop, counter)


async def _gets(port: int, seconds: float) -> list[float]:
    get = bytes(rpb.GetRequest(namespace=NAMESPACE, type=NS_TYPE, id="res-00007-" + "x" * 40))
    out = []
    async with _connect(port) as conn:
        await conn.unary(auth.STATE + "Get", get)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            await conn.unary(auth.STATE + "Get", get)
            out.append(time.perf_counter() - t)
            await anyio.sleep(0.005)
    return out


async def _watches(port: int, n: int, pipe: Pipe) -> tuple[float, float]:
    req = bytes(rpb.WatchRequest(namespace="events", type=NS_TYPE, api_version=1))
    established = anyio.Event()
    count, got = 0, 0
    done = anyio.Event()

    async with _connect(port) as conn:
        start = time.perf_counter()

        async def one() -> None:
            nonlocal count, got
            async with conn.stream(auth.STATE + "Watch", req) as replies:
                await replies.__anext__()
                count += 1
                if count == n:
                    established.set()
                await replies.__anext__()
                got += 1
                if got == n:
                    done.set()

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for _ in range(n):
                    tg.start_soon(one)
                await established.wait()
                t_est = time.perf_counter() - start
                t0 = time.perf_counter()
                pipe.send("event")
                await done.wait()
                t_ev = time.perf_counter() - t0
                await anyio.to_thread.run_sync(pipe.recv)
    return t_est, t_ev


def _calibrate() -> float:
    t = time.perf_counter()
    x = 0
    for i in range(3_000_000):
        x += i & 7
    return time.perf_counter() - t


def _fmt(lat: list[float]) -> str:
    return f"p50 {statistics.median(lat) * 1e3:6.1f} ms  max {max(lat) * 1e3:6.1f} ms  ({len(lat)} Gets)"


def main() -> None:
    loopback_pki()  # generated once, inherited by the forked processes
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_server_main, args=(child,), daemon=True)
    server.start()
    port = parent.recv()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; calibration loop "
          f"{_calibrate() * 1e3:.0f} ms (3M additions)")
    opts = largest_query()
    print(f"largest query: {len(bytes(list_request(opts)))} bytes, {len(opts.label_query)} queries, "
          f"{sum(len(q.terms) for q in opts.label_query)} terms, "
          f"{sum(len(t.value) for q in opts.label_query for t in q.terms)} values, "
          f"regexp {len(opts.id_query.regexp)} bytes; {RESOURCES} resources in the kind")
    try:
        base = anyio.run(_gets, port, SECONDS)
        print(f"item 1  Get, no other client (baseline)        {_fmt(base)}")
        for what in ("list", "watch"):
            stop, counter = ctx.Event(), ctx.Value("i", 0)
            h = ctx.Process(target=_hostile_main, args=(port, what, stop, counter), daemon=True)
            h.start()
            time.sleep(1.0)
            lat = anyio.run(_gets, port, SECONDS)
            stop.set()
            h.join(30)
            ratio = statistics.median(lat) / statistics.median(base)
            print(f"item 1  Get while a reader repeats the largest {what:5}  {_fmt(lat)}  "
                  f"p50 x{ratio:.1f} of baseline; {counter.value} {what}s served")
        for n in (100, 500, 1000):
            t_est, t_ev = anyio.run(_watches, port, n, parent)
            print(f"item 5  {n:4} watches on one connection: all established in {t_est:5.2f} s, "
                  f"one event reached all in {t_ev:5.2f} s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        parent.send("stop")
        server.join(10)


if __name__ == "__main__":
    main()
