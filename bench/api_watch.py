"""Benchmark of the API path (issue 3 figures): machined-side store -> mTLS gRPC -> client.

Prints (medians of several runs on this machine):
* watch throughput: events/s delivered to one watching client (GrpcState, decoded into typed
  resources) for an aggregated watch (batches) and a per-event watch, plus the raw rate of
  the aggregated stream without decoding;
* Get latency p50/p99 and List (100 items) latency p50 over one mTLS connection;
* ``kosctl --help`` and ``kosctl get ns meta`` wall time from process start to exit.

The server runs in a child process (its own event loop and core): an InMemoryState behind
the real API server over mutual TLS on 127.0.0.1; on command it writes N updates as fast as
the store takes them, and the client counts what arrives. Run: python -m bench.api_watch
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from kos.apis import auth
from kos.apis.client import ClientConfig, Context, GrpcState
from kos.resources.core import (
    EventType,
    InMemoryState,
    Kind,
    Pointer,
    Resource,
    Spec,
    publish_meta,
    resource_type,
    spec_field,
)
from tests.support.loopback import loopback_pki, serve_state

RUNS = 5
EVENTS = 20_000


@resource_type("BenchItems.apibench.kos.dev", namespace="bench")
@dataclass
class BenchSpec(Spec):
    value: int = spec_field(1, default=0)
    name: str = spec_field(2, default="")


KIND = Kind("bench", BenchSpec.definition.type)  # the watched kind (grows with every run)
FIXED = Kind("fixed", BenchSpec.definition.type)  # 100 items for Get/List latency
UPDATED = Kind("updated", BenchSpec.definition.type)  # 1000 items updated round robin


# -- the server process ---------------------------------------------------------------------------


async def _serve(pipe: Pipe) -> None:
    st = InMemoryState(history_max=1 << 17)
    await publish_meta(st)
    for i in range(100):
        await st.create(Resource.new(BenchSpec(value=i, name=f"item-{i}"), f"i{i:03}", namespace=FIXED.namespace))
    for i in range(1000):
        await st.create(Resource.new(BenchSpec(value=0, name="u"), f"u{i:03}", namespace=UPDATED.namespace))
    async with serve_state(st, writable=["bench"]) as api:
        pipe.send(api.server.port)
        counter = 0
        while True:
            cmd = await anyio.to_thread.run_sync(pipe.recv)
            if cmd[0] == "stop":
                return
            n = cmd[1]
            for i in range(n):
                counter += 1
                if cmd[0] == "go":
                    r = Resource.new(BenchSpec(value=counter, name="x"), f"e{counter}", namespace="bench")
                    await st.create(r)
                else:  # "upd": updates of 1000 resources, round robin (controllers' usual traffic)
                    ptr = Pointer(UPDATED.namespace, UPDATED.type, f"u{i % 1000:03}")
                    cur = await st.get(ptr)
                    cur.spec.value = counter
                    await st.update(cur)
                if i % 256 == 0:
                    await anyio.lowlevel.checkpoint()  # let the server send while producing
            pipe.send("done")


def _server_main(pipe: Pipe) -> None:
    anyio.run(_serve, pipe)


# -- the client -----------------------------------------------------------------------------------


async def _update_rate(port: int, pipe: Pipe) -> float:
    """Aggregated watch of a kind whose resources are updated (events carry old and new)."""
    conn = _connect(port)
    try:
        got = 0
        async with GrpcState(conn).watch_kind_aggregated(UPDATED, bootstrap_bookmark=True) as batches:
            pipe.send(("upd", EVENTS))
            t0 = time.perf_counter()
            async for batch in batches:
                got += sum(1 for ev in batch if ev.type == EventType.UPDATED)
                if got >= EVENTS:
                    break
        elapsed = time.perf_counter() - t0
        await anyio.to_thread.run_sync(pipe.recv)
        return EVENTS / elapsed
    finally:
        conn.close()


async def _watch_rate(port: int, pipe: Pipe, *, aggregated: bool, decode: bool = True) -> float:
    api_conn = _connect(port)
    try:
        if not decode:
            return await _raw_rate(api_conn, pipe)
        st = GrpcState(api_conn)  # specs decoded into the registered classes
        got = 0
        stream = (st.watch_kind_aggregated(KIND, bootstrap_bookmark=True) if aggregated
                  else st.watch_kind(KIND, bootstrap_bookmark=True))
        async with stream as events:
            pipe.send(("go", EVENTS))
            t0 = time.perf_counter()
            async for item in events:
                batch = item if aggregated else [item]
                for ev in batch:  # type: ignore[union-attr]
                    if ev.type == EventType.CREATED:
                        got += 1
                    elif ev.type == EventType.ERRORED:
                        raise RuntimeError(ev.error)
                if got >= EVENTS:
                    break
        elapsed = time.perf_counter() - t0
        await anyio.to_thread.run_sync(pipe.recv)
        return EVENTS / elapsed
    finally:
        api_conn.close()


async def _raw_rate(conn: Any, pipe: Pipe) -> float:
    """Aggregated watch, counting events in the raw messages without building resources."""
    from kos.apis import wire

    req = (wire.length_delimited(b"\x0a", b"bench") + wire.length_delimited(b"\x12", KIND.type.encode())
           + wire.length_delimited(b"\x22", b"\x28\x01\x38\x01") + b"\x28\x01")
    got = 0
    async with conn.stream(auth.STATE + "Watch", req) as replies:
        it = aiter(replies)
        await anext(it)  # established
        await anext(it)  # the Noop bookmark
        pipe.send(("go", EVENTS))
        t0 = time.perf_counter()
        async for msg in it:
            got += sum(1 for n, _, _ in wire.fields(msg) if n == 1)
            if got >= EVENTS:
                break
    elapsed = time.perf_counter() - t0
    await anyio.to_thread.run_sync(pipe.recv)
    return EVENTS / elapsed


def _connect(port: int) -> Any:
    from kos.apis.client import Connection

    pki = loopback_pki()
    return Connection(f"127.0.0.1:{port}", ca=pki.ca.cert_pem, identity=pki.client((auth.ADMIN,)))


async def _latencies(port: int) -> tuple[float, float, float]:
    conn = _connect(port)
    try:
        st = GrpcState(conn)
        ptr = Pointer(FIXED.namespace, FIXED.type, "i042")
        for _ in range(50):
            await st.get(ptr)
        gets = []
        for _ in range(2000):
            t = time.perf_counter()
            await st.get(ptr)
            gets.append(time.perf_counter() - t)
        lists = []
        for _ in range(100):
            t = time.perf_counter()
            items = await st.list(FIXED)
            lists.append(time.perf_counter() - t)
            assert len(items) == 100
        gets.sort()
        return gets[len(gets) // 2] * 1e3, gets[int(len(gets) * 0.99)] * 1e3, statistics.median(lists) * 1e3
    finally:
        conn.close()


def _wall(args: list[str], env: dict[str, str]) -> float:
    """Median wall time of ``kosctl ARGS``; one warm-up run first (it also writes the bytecode
    cache, as an installed package has it: this environment sets PYTHONDONTWRITEBYTECODE)."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    loopback_pki()  # generated once, inherited by the forked server
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_server_main, args=(child,), daemon=True)
    proc.start()
    port = parent.recv()
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    try:
        agg = [anyio.run(lambda: _watch_rate(port, parent, aggregated=True)) for _ in range(RUNS)]
        raw = [anyio.run(lambda: _watch_rate(port, parent, aggregated=True, decode=False)) for _ in range(RUNS)]
        flat = [anyio.run(lambda: _watch_rate(port, parent, aggregated=False)) for _ in range(RUNS)]
        print(f"watch, aggregated, decoded      : {statistics.median(agg):10,.0f} events/s (median of {RUNS} x "
              f"{EVENTS:,})")
        print(f"watch, aggregated, raw messages : {statistics.median(raw):10,.0f} events/s")
        print(f"watch, per event, decoded       : {statistics.median(flat):10,.0f} events/s")
        print(f"aggregated / per-event          : {statistics.median(agg) / statistics.median(flat):10.2f} x")
        upd = [anyio.run(lambda: _update_rate(port, parent)) for _ in range(RUNS)]
        print(f"watch, aggregated, updates      : {statistics.median(upd):10,.0f} events/s (old + new per event)")
        p50, p99, lst = anyio.run(_latencies, port)
        print(f"Get latency                     : p50 {p50:.2f} ms, p99 {p99:.2f} ms (2000 sequential Gets)")
        print(f"List latency (100 items)        : p50 {lst:.2f} ms")
        with tempfile.TemporaryDirectory() as d:
            pki = loopback_pki()
            client = pki.client((auth.ADMIN,))
            cfg = ClientConfig(context="bench", contexts={"bench": Context(
                endpoints=[f"127.0.0.1:{port}"], ca=pki.ca.cert_pem, crt=client.cert_pem, key=client.key_pem)})
            path = Path(d) / "kosconfig"
            cfg.save(path)
            env = dict(os.environ, KOSCONFIG=str(path))
            print(f"kosctl --help wall time         : {_wall(['--help'], env):.0f} ms (median of {RUNS})")
            print(f"kosctl get ns meta wall time    : {_wall(['get', 'ns', 'meta'], env):.0f} ms (median of {RUNS})")
    finally:
        parent.send(("stop",))
        proc.join(10)
        if proc.is_alive():
            proc.kill()


if __name__ == "__main__":
    main()
