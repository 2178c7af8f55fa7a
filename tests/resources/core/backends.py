"""The State backends the conformance suite runs against.

Each factory returns a fresh, empty State. Add a backend here (e.g. the gRPC client state)
and every conformance test runs against it too.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from kos.resources.core import InMemoryState, NamespacedState, SqliteStore, State


@asynccontextmanager
async def inmem() -> AsyncIterator[State]:
    yield InMemoryState()


@asynccontextmanager
async def namespaced() -> AsyncIterator[State]:
    yield NamespacedState(lambda ns: InMemoryState())


@asynccontextmanager
async def persistent() -> AsyncIterator[State]:
    with tempfile.TemporaryDirectory() as d:
        store = SqliteStore(Path(d) / "state.db")
        try:
            yield InMemoryState(backing_store=store)
        finally:
            store.close()


@asynccontextmanager
async def grpc() -> AsyncIterator[State]:
    """``GrpcState`` against a real API server (mutual TLS on loopback) over an InMemoryState;
    the namespaces the suite writes are writable for os:admin."""
    from kos.apis.client import GrpcState
    from tests.support.loopback import serve_state

    async with serve_state(InMemoryState(), writable=["default", "one", "two"]) as api:
        conn = api.connect()
        try:
            yield GrpcState(conn)
        finally:
            conn.close()


BACKENDS: dict[str, Callable[[], AbstractAsyncContextManager[State]]] = {
    "inmem": inmem,
    "namespaced": namespaced,
    "persistent": persistent,
    "grpc": grpc,
}
