"""Shared pieces of the config tests: generated configs (once per process) and a node-like
harness: an in-memory state, a controller runtime with the config (and optionally secrets)
controllers over a ``ConfigManager`` on a temporary STATE directory."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from kos.controllers.config.assembly import config_controllers
from kos.controllers.config.manager import ConfigManager
from kos.controllers.runtime import Runtime
from kos.controllers.secrets.assembly import secrets_controllers
from kos.resources.core import InMemoryState
from kos.resources.machineconfig import ConfigContainer
from kos.resources.machineconfig.generate import GenOptions, generate
from kos.resources.machineconfig.secrets import SecretsBundle


@functools.cache
def configs() -> tuple[str, str]:
    g = generate(GenOptions(cluster_name="demo", endpoint="https://127.0.0.1:6443"), SecretsBundle.generate())
    return g.controlplane.to_yaml(), g.worker.to_yaml()


def patched(text: str, fn: Any) -> str:
    """The config with ``fn(config)`` applied to its v1alpha1 model."""
    c = ConfigContainer.load(text)
    fn(c.config)
    return c.to_yaml()


@asynccontextmanager
async def node(state_dir: Path, *, secrets: bool = False, **kw: Any) -> AsyncIterator[tuple[InMemoryState,
                                                                                           ConfigManager]]:
    kw.setdefault("validation_mode", "container")
    kw.setdefault("fetch_attempts", 2)
    kw.setdefault("fetch_delay", 0.01)
    manager = ConfigManager(state_dir, **kw)
    state = InMemoryState(history_max=4096)
    rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    for c in config_controllers(config_manager=manager):
        rt.register(c)
    if secrets:
        for c in secrets_controllers(extra_names=["127.0.0.1"]):
            rt.register(c)
    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.run)
        with anyio.fail_after(15):
            await manager.acquired.wait()
        try:
            yield state, manager
        finally:
            tg.cancel_scope.cancel()
