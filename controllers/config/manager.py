"""The node's machine config: which one is in effect, how a new one is applied, and what
is stored on the STATE volume.

``ConfigManager`` owns ``<state>/config.yaml`` (active) and ``<state>/config.staged.yaml``
(staged) and the config in effect (which differs from the stored one during a ``try``).
``MachineConfigController`` (in ``controller.py``) acquires the config at boot through
``acquire()`` and publishes what the manager holds as ``MachineConfigs`` (``v1alpha1``,
``staged``) and ``MachineTypes``.

``apply(data, mode, dry_run=, try_timeout=)`` (what ApplyConfiguration calls):

* validate first (strict load + semantic validation for ``validation_mode``); on error
  nothing changes and ``ApplyError(INVALID_ARGUMENT)`` lists every error;
* then what this node cannot run (``preconditions(active, new)``, e.g. a Kubernetes version it
  holds no release of): ``ApplyError(FAILED_PRECONDITION)`` naming each, nothing changes (dry
  runs included);
* ``dry_run``: the diff (secrets redacted), nothing changes;
* ``staged``: stored as the staged config, promoted over the active one at the next start;
* ``try``: put in effect but not stored; rolled back to the stored config after
  ``try_timeout`` seconds unless a later non-try apply confirms it (changes needing a reboot
  are refused);
* ``no-reboot``: stored and put in effect; refused (``FAILED_PRECONDITION`` naming the
  fields) when a changed field needs a reboot;
* ``reboot``: stored, then the ``reboot`` hook runs (after the reply is sent);
* ``auto``: like ``no-reboot`` when possible, else like ``reboot``.

An apply whose config equals the one in effect (same content, any formatting) changes
nothing: no write, no new resource version. A live apply returns once the MachineConfig
resource shows it (so controllers have been triggered).
"""

from __future__ import annotations

import enum
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_process
import structlog
from anyio import BrokenWorkerProcess

from kos.controllers.config import acquire as acq
from kos.resources.machineconfig import check as check_config
from kos.resources.machineconfig import quiet_gc
from kos.resources.machineconfig.container import ConfigContainer
from kos.resources.machineconfig.diff import changed_paths, config_diff, reboot_required
from kos.resources.machineconfig.errors import ConfigErrors
from kos.resources.machineconfig.persist import atomic_write, remove_leftovers

log = structlog.get_logger("kos.controllers.config")

MODES = ("auto", "no-reboot", "reboot", "staged", "try")
MAX_TRY_TIMEOUT = 86400.0

PlatformSource = Callable[[], Awaitable[bytes | None]]
RebootHook = Callable[[], Awaitable[None]]
EventSink = Callable[[str, dict[str, Any]], None]


class ErrorCode(enum.Enum):
    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"


class ApplyError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ApplyOutcome:
    warnings: list[str]
    details: str
    diff: str = ""
    reboot: bool = False  # the caller runs ``ConfigManager.reboot`` after replying
    changed: bool = False


@dataclass
class _Loaded:
    container: ConfigContainer
    text: str


def _load(data: bytes | str, mode: str, what: str) -> tuple[ConfigContainer, list[str]]:
    """Strict load and validation; ConfigErrors with every error (naming ``what``)."""
    try:
        with quiet_gc():
            container = ConfigContainer.load(data, strict=True)
            warnings = container.validate(mode)
    except ConfigErrors as exc:
        raise ConfigErrors(exc.errors, what=what, dropped=exc.dropped) from None
    return container, [str(w) for w in [*container.warnings, *warnings]]


PROCESS_CHECK_BYTES = 256 * 1024
"""Configs larger than this (a generated config is ~20 KB) are first checked in a worker
process: a hostile input near the limits costs seconds of CPU, and in a thread of this
process that CPU time competes with the API for the GIL."""


async def _check_in_process(data: bytes, mode: str) -> str | None:
    """The config's error message (None: valid), from ``kos.resources.machineconfig.check``
    in a worker process; if no process can be started, the caller's in-thread check decides."""
    try:
        problem: str | None = await anyio.to_process.run_sync(check_config, data, mode, "configuration",
                                                             cancellable=True)
    except (OSError, BrokenWorkerProcess) as exc:
        log.warning("config check process failed; checking in a thread", error=str(exc))
        return None
    return problem


def _compare(cur: ConfigContainer | None, new: ConfigContainer) -> tuple[str, list[str], list[str]]:
    """The diff, the changed paths and those needing a reboot (runs in a worker thread)."""
    with quiet_gc():
        diff = config_diff(cur, new)
        changed = changed_paths(cur, new) if cur is not None else ["<all>"]
        needs_reboot = reboot_required(cur, new) if cur is not None else []
    return diff, changed, needs_reboot


@dataclass
class ConfigManager:
    state_dir: Path
    validation_mode: str = "metal"
    platform_source: PlatformSource | None = None
    cmdline: str | None = None
    reboot_hook: RebootHook | None = None
    events: EventSink | None = None
    fetch_attempts: int = 5
    fetch_delay: float = 1.0
    publish_timeout: float = 10.0
    not_acted_on: Callable[[ConfigContainer], list[tuple[str, str]]] | None = None
    """The fields a config sets that this node will not act on, with why (kos.controllers.system)."""
    preconditions: Callable[[ConfigContainer | None, ConfigContainer], list[str]] | None = None
    """What keeps this node from running ``new`` (given the config in effect); blocking, run in a
    worker thread (kos.controllers.k8s.releases)."""

    active: _Loaded | None = field(default=None, init=False)
    persisted: _Loaded | None = field(default=None, init=False)
    staged_text: str = field(default="", init=False)
    try_deadline: float | None = field(default=None, init=False)
    source: str = field(default="", init=False)
    acquired: anyio.Event = field(default_factory=anyio.Event, init=False)
    generation: int = field(default=0, init=False)
    published: int = field(default=0, init=False)
    _lock: anyio.Lock = field(default_factory=anyio.Lock, init=False)
    _published_changed: anyio.Event = field(default_factory=anyio.Event, init=False)
    _notify: Callable[[], None] | None = field(default=None, init=False)

    @property
    def active_path(self) -> Path:
        return self.state_dir / "config.yaml"

    @property
    def staged_path(self) -> Path:
        return self.state_dir / "config.staged.yaml"

    @property
    def maintenance(self) -> bool:
        """No config in effect: the node waits for ApplyConfiguration."""
        return self.active is None

    # -- wiring with the controller -------------------------------------------------------
    def attach(self, notify: Callable[[], None]) -> None:
        """The controller's ``queue_reconcile``: called whenever what to publish changed."""
        self._notify = notify
        notify()

    def mark_published(self, generation: int) -> None:
        self.published = max(self.published, generation)
        self._published_changed.set()
        self._published_changed = anyio.Event()

    def _changed(self) -> int:
        self.generation += 1
        if self._notify is not None:
            self._notify()
        return self.generation

    async def _wait_published(self, generation: int) -> None:
        if self._notify is None:
            return
        with anyio.move_on_after(self.publish_timeout):
            while self.published < generation:
                await self._published_changed.wait()

    def _event(self, action: str, **payload: Any) -> None:
        log.info("config " + action, **payload)
        if self.events is not None:
            self.events("config", {"action": action, **payload})

    # -- boot: acquisition ----------------------------------------------------------------
    async def acquire(self) -> None:
        """Find the config to boot with (STATE, platform, kernel cmdline), else stay in
        maintenance. Never raises for a bad source: it is reported as an event."""
        async with self._lock:
            try:
                await self._acquire()
            finally:
                self.acquired.set()
                self._changed()

    async def _acquire(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        leftovers = await anyio.to_thread.run_sync(remove_leftovers, self.state_dir)
        if leftovers:
            self._event("leftovers of interrupted writes removed", files=leftovers)
        if self.staged_path.exists():
            await anyio.to_thread.run_sync(os.replace, self.staged_path, self.active_path)
            self._event("staged config promoted", path=str(self.active_path))
        if self.active_path.exists():
            data = await anyio.to_thread.run_sync(self.active_path.read_bytes)
            try:
                container, _ = _load(data, self.validation_mode, str(self.active_path))
            except ConfigErrors as exc:
                self._event("stored config invalid; staying in maintenance", error=str(exc))
                return
            self.active = self.persisted = _Loaded(container, data.decode())
            self.source = "state"
            self._event("loaded", source="state")
            return
        if self.platform_source is not None:
            try:
                data_or_none = await self.platform_source()
            except Exception as exc:
                self._event("platform config source failed; staying in maintenance", error=str(exc))
                return
            if data_or_none:
                await self._adopt(data_or_none, "platform")
                return
        url = acq.config_url(self.cmdline or "")
        if url is not None:
            try:
                data = await acq.fetch(url, attempts=self.fetch_attempts, delay=self.fetch_delay)
            except acq.AcquireError as exc:
                self._event("config fetch failed; staying in maintenance", url=url, error=str(exc))
                return
            await self._adopt(data, f"cmdline {url}")
            return
        self._event("no config found; maintenance mode, waiting for ApplyConfiguration")

    async def _adopt(self, data: bytes, source: str) -> None:
        try:
            container, _ = _load(data, self.validation_mode, f"config from {source}")
        except ConfigErrors as exc:
            self._event("acquired config invalid; staying in maintenance", source=source, error=str(exc))
            return
        await anyio.to_thread.run_sync(atomic_write, self.active_path, data)
        self.active = self.persisted = _Loaded(container, data.decode())
        self.source = source
        self._event("loaded", source=source)

    # -- apply --------------------------------------------------------------------------
    async def apply(self, data: bytes, mode: str = "auto", *, dry_run: bool = False,
                    try_timeout: float = 0.0) -> ApplyOutcome:
        if mode not in MODES:
            expected = ", ".join(MODES)
            raise ApplyError(ErrorCode.INVALID_ARGUMENT, f"mode: {mode!r} is invalid, expected one of {expected}")
        if not data.strip():
            raise ApplyError(ErrorCode.INVALID_ARGUMENT, "data: the configuration is empty")
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise ApplyError(ErrorCode.INVALID_ARGUMENT, f"data: not UTF-8 text ({exc})") from None
        if len(data) > PROCESS_CHECK_BYTES:
            problem = await _check_in_process(data, self.validation_mode)
            if problem is not None:
                raise ApplyError(ErrorCode.INVALID_ARGUMENT, problem)
        try:
            container, warnings = await anyio.to_thread.run_sync(_load, data, self.validation_mode, "configuration")
        except ConfigErrors as exc:
            raise ApplyError(ErrorCode.INVALID_ARGUMENT, str(exc)) from None
        notes = [f"{path}: set, but not acted on by this node: {why}" for path, why in
                 (self.not_acted_on(container) if self.not_acted_on is not None else [])]
        async with self._lock:
            if self.preconditions is not None:
                cur = self.active.container if self.active is not None else None
                problems = await anyio.to_thread.run_sync(self.preconditions, cur, container)
                if problems:
                    raise ApplyError(ErrorCode.FAILED_PRECONDITION, "; ".join(problems) + " (nothing was applied)")
            out = await self._apply(_Loaded(container, text), [*warnings, *notes], mode, dry_run, try_timeout)
        if notes:  # never a plain "Applied configuration" for what has no effect
            out.details += f"; {len(notes)} field(s) set but not acted on here (see warnings)"
        return out

    async def _apply(self, new: _Loaded, warnings: list[str], mode: str, dry_run: bool,
                     try_timeout: float) -> ApplyOutcome:
        cur = self.active.container if self.active is not None else None
        # comparing two large configs is real work: off the event loop
        diff, changed, needs_reboot = await anyio.to_thread.run_sync(_compare, cur, new.container)
        if dry_run:
            return ApplyOutcome(warnings, "Dry run: nothing applied", diff or "No changes.")
        if cur is None and mode in ("staged", "try"):
            raise ApplyError(ErrorCode.FAILED_PRECONDITION,
                             f"mode {mode}: no config is in effect yet (maintenance mode); apply with mode auto first")
        if mode == "try" and not (math.isfinite(try_timeout) and 0 < try_timeout <= MAX_TRY_TIMEOUT):
            raise ApplyError(ErrorCode.INVALID_ARGUMENT,
                             f"try_timeout: {try_timeout} is invalid, expected a number of seconds in "
                             f"(0, {MAX_TRY_TIMEOUT:g}]")
        if mode in ("try", "no-reboot") and needs_reboot:
            raise ApplyError(ErrorCode.FAILED_PRECONDITION,
                             f"mode {mode}: these changes need a reboot: {', '.join(needs_reboot)} "
                             "(use --mode reboot, auto or staged)")
        if mode == "staged":
            await anyio.to_thread.run_sync(atomic_write, self.staged_path, new.text.encode())
            self.staged_text = new.text
            await self._wait_published(self._changed())
            self._event("staged", changed=changed)
            return ApplyOutcome(warnings, "Staged configuration to be applied on the next start", diff, changed=True)
        if mode == "try":
            self.active = new
            self.try_deadline = time.time() + try_timeout
            await self._wait_published(self._changed())
            self._event("applied", mode="try", timeout=try_timeout, changed=changed)
            return ApplyOutcome(warnings, f"Applied configuration in try mode: rolled back in {try_timeout:g}s "
                                          "unless confirmed by another apply", diff, changed=bool(changed))
        if mode == "reboot" or (mode == "auto" and needs_reboot):
            if self.reboot_hook is None:
                fields = f" ({', '.join(needs_reboot)})" if needs_reboot else ""
                raise ApplyError(ErrorCode.FAILED_PRECONDITION,
                                 f"mode {mode}: the change{fields} needs a reboot and this node cannot reboot; "
                                 "use --mode staged and restart the node")
            await self._persist(new)
            self.try_deadline = None
            self._event("applied", mode=mode, reboot=True, changed=changed)
            return ApplyOutcome(warnings, "Applied configuration; rebooting", diff, reboot=True, changed=True)
        # live: auto or no-reboot without reboot-only changes
        unchanged = not changed and self.try_deadline is None and self.persisted is not None
        if unchanged:
            return ApplyOutcome(warnings, "No changes: the configuration is already in effect", diff)
        confirmed = self.try_deadline is not None
        await self._persist(new)
        self.active = new
        self.try_deadline = None
        await self._wait_published(self._changed())
        self._event("applied", mode=mode, changed=changed, confirmed_try=confirmed)
        return ApplyOutcome(warnings, "Applied configuration without a reboot", diff, changed=True)

    async def _persist(self, new: _Loaded) -> None:
        await anyio.to_thread.run_sync(atomic_write, self.active_path, new.text.encode())
        self.persisted = new
        if self.staged_path.exists() or self.staged_text:  # an explicit apply supersedes a staged one
            await anyio.to_thread.run_sync(lambda: self.staged_path.unlink(missing_ok=True))
            self.staged_text = ""

    async def reboot(self) -> None:
        if self.reboot_hook is not None:
            await self.reboot_hook()

    # -- try-mode rollback ----------------------------------------------------------------
    def expire_try(self, now: float | None = None) -> bool:
        """Roll a try-mode config back once its deadline passed; True if it did. (No lock, no
        await: it runs between an apply's steps atomically, and must not wait for an apply
        that itself waits for the controller to publish.)"""
        if self.try_deadline is None or (now or time.time()) < self.try_deadline:
            return False
        self.try_deadline = None
        self.active = self.persisted
        self._changed()
        self._event("try rolled back", to="stored config" if self.persisted is not None else "maintenance")
        return True
