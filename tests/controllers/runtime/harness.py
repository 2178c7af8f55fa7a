"""Run a Runtime in the background of a test and stop it (cancelling every controller) after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from kos.controllers.runtime import Runtime
from kos.resources.core import InMemoryState


@asynccontextmanager
async def running(runtime: Runtime) -> AsyncIterator[Runtime]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        try:
            yield runtime
        finally:
            tg.cancel_scope.cancel()


def new_runtime(**options: object) -> tuple[InMemoryState, Runtime]:
    state = InMemoryState(history_max=4096)
    return state, Runtime(state, backoff_initial=0.01, backoff_max=0.2, **options)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait for a runtime-side condition that no watch exposes (metrics): poll with a deadline."""
    deadline = anyio.current_time() + timeout
    while not predicate():
        if anyio.current_time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await anyio.sleep(0.005)
