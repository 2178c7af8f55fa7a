"""Test helpers: wait (via watches, never sleep-polling) until the state converges.

``await assert_resources(state, kind, ids, check)`` returns once every id exists and
``check(resource)`` passes for each (``check`` may return False or raise AssertionError);
``await assert_no_resource(state, ptr)`` returns once the resource is gone. On timeout both
raise AssertionError with the last seen state of every id and why it did not pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio

from kos.resources.core import EventType, Kind, Pointer, Resource, State

Check = Callable[[Resource[Any]], object] | Callable[[Resource[Any]], Awaitable[object]]


async def _passes(check: Check | None, r: Resource[Any]) -> str | None:
    """None if ``check`` passes, else why not."""
    if check is None:
        return None
    try:
        result = check(r)
        if inspect.isawaitable(result):
            result = await result
    except AssertionError as exc:
        return f"check failed: {exc}" if str(exc) else "check failed"
    if result is False:
        return "check returned False"
    return None


def _describe(r: Resource[Any] | None) -> str:
    if r is None:
        return "missing"
    md = r.metadata
    extra = f" phase={md.phase} owner={md.owner!r}"
    if md.finalizers:
        extra += f" finalizers={list(md.finalizers)}"
    if md.labels:
        extra += f" labels={md.labels}"
    return f"{md}{extra} spec={r.spec!r}"


async def assert_resources(
    state: State,
    kind: Kind,
    ids: Iterable[str],
    check: Check | None = None,
    timeout: float = 5.0,
) -> dict[str, Resource[Any]]:
    """Wait until every id of ``kind`` exists and passes ``check``; returns them by id."""
    wanted = list(dict.fromkeys(ids))
    seen: dict[str, Resource[Any]] = {}
    failures: dict[str, str] = {}
    bootstrapped = False

    async def evaluate() -> bool:
        failures.clear()
        for id in wanted:
            r = seen.get(id)
            why = "missing" if r is None else await _passes(check, r)
            if why is not None:
                failures[id] = why
        return not failures

    with anyio.move_on_after(timeout):
        async with state.watch_kind_aggregated(kind, bootstrap_contents=True) as batches:
            async for batch in batches:
                for ev in batch:
                    if ev.type == EventType.ERRORED:
                        raise AssertionError(f"watch of {kind} failed: {ev.error}")
                    if ev.type == EventType.BOOTSTRAPPED:
                        bootstrapped = True
                        continue
                    r = ev.resource
                    if r is None or ev.type == EventType.NOOP:
                        continue
                    if ev.type == EventType.DESTROYED:
                        seen.pop(r.metadata.id, None)
                    else:
                        seen[r.metadata.id] = r
                if bootstrapped and await evaluate():
                    return {id: seen[id].copy() for id in wanted}
    lines = [f"resources {kind} did not converge within {timeout:g}s:"]
    for id in wanted:
        status = failures.get(id, "ok")
        lines.append(f"  {id}: {status}; last seen: {_describe(seen.get(id))}")
    others = sorted(set(seen) - set(wanted))
    if others:
        lines.append(f"  (other ids present: {', '.join(others)})")
    raise AssertionError("\n".join(lines))


async def assert_no_resource(state: State, ptr: Pointer, timeout: float = 5.0) -> None:
    """Wait until ``ptr`` does not exist."""
    last: Resource[Any] | None = None
    with anyio.move_on_after(timeout):
        async with state.watch(ptr) as events:
            async for ev in events:
                if ev.type == EventType.ERRORED:
                    raise AssertionError(f"watch of {ptr} failed: {ev.error}")
                if ev.type == EventType.DESTROYED:
                    return
                last = ev.resource
    raise AssertionError(f"resource {ptr} still exists after {timeout:g}s; last seen: {_describe(last)}")


async def assert_length(state: State, kind: Kind, n: int, timeout: float = 5.0) -> None:
    """Wait until ``kind`` holds exactly ``n`` resources."""
    ids: set[str] = set()
    with anyio.move_on_after(timeout):
        async with state.watch_kind_aggregated(kind, bootstrap_contents=True) as batches:
            bootstrapped = False
            async for batch in batches:
                for ev in batch:
                    if ev.type == EventType.BOOTSTRAPPED:
                        bootstrapped = True
                    elif ev.type == EventType.CREATED and ev.resource is not None:
                        ids.add(ev.resource.metadata.id)
                    elif ev.type == EventType.DESTROYED and ev.resource is not None:
                        ids.discard(ev.resource.metadata.id)
                    elif ev.type == EventType.ERRORED:
                        raise AssertionError(f"watch of {kind} failed: {ev.error}")
                if bootstrapped and len(ids) == n:
                    return
    raise AssertionError(f"{kind}: expected {n} resources within {timeout:g}s, have {len(ids)}: {sorted(ids)}")
