"""The ``kos.machine.MachineService`` servicer.

What works in process mode: Version, ApplyConfiguration (stored through a ``ConfigStore``;
modes, dry-run diff, maintenance-mode apply-once), ServiceList/Start/Stop/Restart and Logs
through the service supervisor, Dmesg (``/dev/kmsg``), Events (the node's event bus),
Memory and Processes (``/proc``), GenerateClientConfiguration (needs the OS CA key).
Subsystems that are not built yet (sequencer: Bootstrap/Reboot/Shutdown/Reset/Upgrade;
etcd; container stats) answer UNIMPLEMENTED naming what is missing.
"""

from __future__ import annotations

import collections
import datetime
import difflib
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import yaml
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.apis.server.version import VERSION as VERSION
from kos.apis.server.version import check_version_request, version_response
from kos.resources.core import ECHO_CHARS, cap, echo

Mode = pb.ApplyConfigurationRequestMode


class ConfigStore:
    """Where an applied machine configuration goes: ``<state-dir>/config.yaml``.

    ``validate`` (optional) checks the document and returns warnings or raises ValueError
    with a message naming the problem; ``on_applied`` runs after a successful apply."""

    managed = False
    """True for a store that handles the whole apply (``handle_apply``/``after_reply``), e.g.
    ``kos.controllers.config.api.ManagedConfigStore`` (modes, try rollback, resources)."""

    def __init__(
        self,
        path: Path,
        *,
        validate: Callable[[bytes], list[str]] | None = None,
        on_applied: Callable[[bytes, Mode], Awaitable[None]] | None = None,
    ) -> None:
        self.path = path
        self.validate = validate or basic_validate
        self.on_applied = on_applied

    async def handle_apply(self, req: pb.ApplyConfigurationRequest) -> tuple[pb.ApplyConfigurationResponse, bool]:
        raise NotImplementedError("this config store does not handle applies itself")

    async def after_reply(self, reboot: bool) -> None:
        return None

    def current(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def write(self, data: bytes) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


def basic_validate(data: bytes) -> list[str]:
    """Minimal check until the config package validates: a YAML mapping with a ``version``."""
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ValueError(f"configuration is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"configuration: expected a YAML mapping at the top level, got {type(doc).__name__}")
    warnings = []
    if "version" not in doc:
        warnings.append("configuration has no 'version' field")
    return warnings


@dataclass
class MachineEventRecord:
    type: str
    id: str
    payload: str
    ts: float
    actor_id: str = ""
    seq: int = 0


@dataclass
class EventBus:
    """The node's machine events (config applied, sequences, ...), with a bounded history."""

    capacity: int = 1000
    history: collections.deque[MachineEventRecord] = field(default_factory=collections.deque)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _seq: int = 0

    def publish(self, type: str, payload: dict[str, Any] | str, *, actor_id: str = "") -> None:
        self._seq += 1
        text = payload if isinstance(payload, str) else yaml.safe_dump(payload, sort_keys=False)
        self.history.append(
            MachineEventRecord(type, f"{time.time_ns():x}-{self._seq}", text, time.time(), actor_id, self._seq)
        )
        while len(self.history) > self.capacity:
            self.history.popleft()
        self._changed.set()
        self._changed = anyio.Event()

    def backlog(self, tail: int, *, tail_id: str = "", tail_seconds: float = 0) -> list[MachineEventRecord]:
        """The past events a new follower gets first: those after ``tail_id`` (LookupError when
        it left the history), else those of the last ``tail_seconds``, else the last ``tail``
        (-1: all, 0: none)."""
        items = list(self.history)
        if tail_id:
            idx = next((i for i, r in enumerate(items) if r.id == tail_id), None)
            if idx is None:
                raise LookupError(
                    f"tail_id: event {echo(tail_id)} is not in the history (the last {len(items)} events)")
            return items[idx + 1 :]
        if tail_seconds > 0:
            since = time.time() - tail_seconds
            return [r for r in items if r.ts >= since]
        return items[-tail:] if tail > 0 else ([] if tail == 0 else items)

    async def follow(self, backlog: list[MachineEventRecord]) -> AsyncIterator[MachineEventRecord]:
        """``backlog``, then every event published from now on (none lost, none repeated)."""
        last = self._seq
        for r in backlog:
            yield r
        while True:
            changed = self._changed
            new = [r for r in list(self.history) if r.seq > last]
            for r in new:
                yield r
            if new:
                last = new[-1].seq
            if self._seq == last:
                await changed.wait()


def _ts(t: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t, tz=datetime.UTC)


class HandlerProvider(Protocol):
    """A subsystem's machine-API handlers (e.g. ``kos.machined.api.etcd``): ``register`` adds
    them to the dispatcher with ``d.add(auth.MACHINE + "Name", handler, cardinality)``."""

    def register(self, d: Dispatcher) -> None: ...


DEFAULT_CLIENT_CRT_TTL = 365 * 86400
"""GenerateClientConfiguration: the certificate lifetime when the request leaves it 0."""
MAX_CLIENT_CRT_TTL = 10 * 365 * 86400
"""GenerateClientConfiguration: the longest certificate lifetime issued."""

ClientConfigIssuer = (
    Callable[[list[str], int], pb.GenerateClientConfigurationResponse]
    | Callable[[list[str], int], Awaitable[pb.GenerateClientConfigurationResponse]]
)
"""Issues a client configuration for (roles, lifetime in seconds): a plain function (run in a
worker thread) or a coroutine function (awaited; may read the state, raise GRPCError)."""


class MachineService:
    def __init__(
        self,
        *,
        config: ConfigStore,
        maintenance: bool = False,
        supervisor: Any = None,
        events: EventBus | None = None,
        client_config: ClientConfigIssuer | None = None,
        kmsg_path: str = "/dev/kmsg",
        extensions: Sequence[HandlerProvider] = (),
        platform_name: str = "process",
    ) -> None:
        self.extensions = list(extensions)
        self.platform_name = platform_name
        self.config = config
        self.maintenance = maintenance
        self.supervisor = supervisor
        self.events = events or EventBus()
        self.client_config = client_config
        self.kmsg_path = kmsg_path
        self._applied_in_maintenance = False

    def register(self, d: Dispatcher) -> None:
        p = auth.MACHINE
        unary = Cardinality.UNARY_UNARY
        d.add(p + "Version", self.version, unary)
        d.add(p + "ApplyConfiguration", self.apply_configuration, unary)
        for name, what in (
            ("Bootstrap", "etcd bootstrap needs the etcd service"),
            ("Reboot", "reboot needs the boot sequencer (machined as PID 1)"),
            ("Shutdown", "shutdown needs the boot sequencer (machined as PID 1)"),
            ("Reset", "reset needs the boot sequencer and the volume manager"),
            ("Upgrade", "upgrade needs the A/B image installer"),
            ("Rollback", "rollback needs the A/B image installer"),
            ("EtcdMemberList", "etcd is not managed by this node yet"),
            ("EtcdRemoveMember", "etcd is not managed by this node yet"),
            ("EtcdLeaveCluster", "etcd is not managed by this node yet"),
            ("EtcdForfeitLeadership", "etcd is not managed by this node yet"),
            ("EtcdStatus", "etcd is not managed by this node yet"),
            ("Stats", "container stats need the CRI integration"),
            ("Containers", "containerd is not managed by this node"),
        ):
            d.add(p + name, self._unimplemented(name, what), unary)
        snap = self._unimplemented("EtcdSnapshot", "etcd is not managed yet")
        d.add(p + "EtcdSnapshot", snap, Cardinality.UNARY_STREAM)
        health = self._unimplemented("ClusterHealthCheck", "the node has no client identity to run the checks with")
        d.add(p + "ClusterHealthCheck", health, Cardinality.UNARY_STREAM)
        recover = self._unimplemented("EtcdRecover", "etcd is not managed yet")
        d.add(p + "EtcdRecover", recover, Cardinality.STREAM_UNARY)
        # the daily tools (kos.machined.api): placeholders so that role checks apply everywhere
        for name in ("Mounts", "Netstat", "Time", "SystemStat", "ControllerRuntimeDependencies", "BlockDeviceWipe",
                     "MetaList", "MetaWrite", "MetaDelete", "EtcdAlarmList", "EtcdAlarmDisarm", "EtcdDefragment"):
            d.add(p + name, self._unimplemented(name, "served by machined's API extensions"), unary)
        for name in ("List", "Read", "Copy", "DiskUsage", "ImageList"):
            d.add(p + name, self._unimplemented(name, "served by machined's API extensions"), Cardinality.UNARY_STREAM)
        d.add(p + "ServiceList", self.service_list, unary)
        d.add(p + "ServiceStart", self._service_action("start"), unary)
        d.add(p + "ServiceStop", self._service_action("stop"), unary)
        d.add(p + "ServiceRestart", self._service_action("restart"), unary)
        d.add(p + "Logs", self.logs, Cardinality.UNARY_STREAM)
        d.add(p + "Dmesg", self.dmesg, Cardinality.UNARY_STREAM)
        d.add(p + "Events", self.events_stream, Cardinality.UNARY_STREAM)
        d.add(p + "Memory", self.memory, unary)
        d.add(p + "Processes", self.processes, unary)
        d.add(p + "GenerateClientConfiguration", self.generate_client_configuration, unary)
        # Subsystems (etcd, sequencer, ...) plug their RPCs in here; a later add replaces the
        # UNIMPLEMENTED placeholder of the same method.
        for ext in self.extensions:
            ext.register(d)

    @staticmethod
    def _unimplemented(name: str, what: str) -> Callable[[Call], Awaitable[None]]:
        async def h(call: Call) -> None:
            raise GRPCError(Status.UNIMPLEMENTED, f"{name} is not implemented yet: {what}")

        return h

    # -- version / config -------------------------------------------------------------------
    async def version(self, call: Call) -> None:
        check_version_request(await call.request())
        await call.send(version_response(self.platform_name, self.maintenance))

    async def apply_configuration(self, call: Call) -> None:
        req = parse(pb.ApplyConfigurationRequest, await call.request())
        if req.mode not in set(Mode):
            raise GRPCError(Status.INVALID_ARGUMENT, f"mode: unknown value {int(req.mode)}")
        if req.mode == Mode.TRY and req.try_timeout <= 0 and not req.dry_run:
            raise GRPCError(Status.INVALID_ARGUMENT, "try_timeout: mode 'try' needs a positive timeout (seconds)")
        if not req.data.strip():
            raise GRPCError(Status.INVALID_ARGUMENT, "data: the configuration is empty")
        if self.config.managed:
            await self._managed_apply(call, req)
            return
        try:
            warnings = self.config.validate(req.data)
        except ValueError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, str(exc)) from None
        current = self.config.current()
        if req.dry_run:
            diff = "".join(
                difflib.unified_diff(
                    current.decode(errors="replace").splitlines(keepends=True),
                    req.data.decode(errors="replace").splitlines(keepends=True),
                    "current",
                    "new",
                )
            )
            resp = pb.ApplyConfigurationResponse(
                warnings=warnings, mode=req.mode, mode_details="Dry run: nothing applied", diff=diff or "No changes."
            )
            await call.send(bytes(resp))
            return
        if self.maintenance:
            if self._applied_in_maintenance:
                raise GRPCError(
                    Status.FAILED_PRECONDITION,
                    "configuration was already applied in maintenance mode; use mutual TLS from now on",
                )
            self._applied_in_maintenance = True
        if req.mode in (Mode.REBOOT, Mode.TRY) and not self.maintenance:
            raise GRPCError(
                Status.UNIMPLEMENTED,
                f"mode {str(req.mode.name).lower()}: needs the boot sequencer (reboot/rollback); use auto or no-reboot",
            )
        await anyio.to_thread.run_sync(self.config.write, req.data)
        details = {
            Mode.STAGED: "Staged configuration to be applied on the next reboot",
            Mode.NO_REBOOT: "Applied configuration without a reboot",
        }.get(req.mode, "Applied configuration")
        self.events.publish("config", {"action": "applied", "mode": str(req.mode.name).lower()})
        resp = pb.ApplyConfigurationResponse(warnings=warnings, mode=req.mode, mode_details=details)
        await call.send(bytes(resp))
        if self.config.on_applied is not None:
            await self.config.on_applied(req.data, req.mode)

    async def _managed_apply(self, call: Call, req: pb.ApplyConfigurationRequest) -> None:
        if self.maintenance and not req.dry_run and self._applied_in_maintenance:
            raise GRPCError(
                Status.FAILED_PRECONDITION,
                "configuration was already applied in maintenance mode; use mutual TLS from now on",
            )
        resp, reboot = await self.config.handle_apply(req)  # the managed store publishes its own events
        if not req.dry_run:
            self._applied_in_maintenance = self.maintenance
        await call.send(bytes(resp))
        await self.config.after_reply(reboot)
        if not req.dry_run and self.config.on_applied is not None:
            await self.config.on_applied(req.data, req.mode)

    # -- services ---------------------------------------------------------------------------
    def _sup(self) -> Any:
        if self.supervisor is None:
            raise GRPCError(Status.UNIMPLEMENTED, "services: no service supervisor runs on this node")
        return self.supervisor

    async def service_list(self, call: Call) -> None:
        parse(pb.ServiceListRequest, await call.request())
        sup = self._sup()
        infos = []
        for st in sup.list():
            infos.append(
                pb.ServiceInfo(
                    id=st.id,
                    state=str(st.state),
                    events=[pb.ServiceEvent(msg=e.message, state=str(e.state), ts=_ts(e.timestamp)) for e in st.events],
                    health=pb.ServiceHealth(
                        unknown=st.health_unknown, healthy=st.healthy, last_message=st.health_message
                    ),
                )
            )
        await call.send(bytes(pb.ServiceListResponse(services=infos)))

    def _service_action(self, action: str) -> Callable[[Call], Awaitable[None]]:
        async def h(call: Call) -> None:
            req = parse(pb.ServiceRequest, await call.request())
            sup = self._sup()
            if req.id not in sup.ids():
                raise GRPCError(Status.NOT_FOUND, f"service {echo(req.id)} not found (known: {', '.join(sup.ids())})")
            await getattr(sup, action)(req.id)
            await call.send(bytes(pb.ServiceActionResponse(resp=f"Service {echo(req.id)} {action} requested")))

        return h

    async def logs(self, call: Call) -> None:
        req = parse(pb.LogsRequest, await call.request())
        sup = self._sup()
        known = sup.log_ids() if hasattr(sup, "log_ids") else sup.ids()  # services and machined itself
        if req.id not in known:
            raise GRPCError(Status.NOT_FOUND, f"service {echo(req.id)} not found (known: {', '.join(known)})")
        ring = sup.log(req.id)
        tail = req.tail_lines if req.tail_lines > 0 else None
        if not req.follow:
            data = b"".join(line + b"\n" for line in ring.tail(tail)) if tail else ring.contents()
            if data:
                await call.send(bytes(pb.Data(bytes=data)))
            return
        async for chunk in ring.follow(tail):
            await call.send(bytes(pb.Data(bytes=chunk)))

    async def dmesg(self, call: Call) -> None:
        req = parse(pb.DmesgRequest, await call.request())
        try:
            fd = await anyio.to_thread.run_sync(lambda: os.open(self.kmsg_path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError as exc:
            raise GRPCError(Status.UNAVAILABLE, f"kernel log {self.kmsg_path}: {exc.strerror}") from None
        try:
            if req.tail:
                os.lseek(fd, 0, os.SEEK_END)
            while True:
                chunk = _read_kmsg(fd)
                if chunk:
                    await call.send(bytes(pb.Data(bytes=chunk)))
                    continue
                if not req.follow:
                    return
                await anyio.wait_readable(fd)
        finally:
            os.close(fd)

    async def events_stream(self, call: Call) -> None:
        req = parse(pb.EventsRequest, await call.request())
        if req.tail_events < -1 or req.tail_seconds < 0:
            raise GRPCError(Status.INVALID_ARGUMENT, "tail_events must be >= -1 and tail_seconds >= 0")
        try:
            backlog = self.events.backlog(req.tail_events, tail_id=req.tail_id, tail_seconds=req.tail_seconds)
        except LookupError as exc:
            raise GRPCError(Status.NOT_FOUND, str(exc)) from None
        async for r in self.events.follow(backlog):
            msg = pb.MachineEvent(type=r.type, id=r.id, actor_id=r.actor_id, payload=r.payload, ts=_ts(r.ts))
            await call.send(bytes(msg))

    # -- system information -----------------------------------------------------------------
    async def memory(self, call: Call) -> None:
        parse(pb.MemoryRequest, await call.request())
        text = await anyio.Path("/proc/meminfo").read_text()
        values = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key.strip().lower()] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
        info = pb.MemInfo(
            **{
                k: values.get(k, 0)
                for k in (
                    "memtotal", "memfree", "memavailable", "buffers", "cached", "swapcached", "swaptotal", "swapfree"
                )
            }
        )
        await call.send(bytes(pb.MemoryResponse(meminfo=info)))

    async def processes(self, call: Call) -> None:
        parse(pb.ProcessesRequest, await call.request())
        procs = await anyio.to_thread.run_sync(_read_processes)
        await call.send(bytes(pb.ProcessesResponse(processes=procs)))

    async def generate_client_configuration(self, call: Call) -> None:
        req = parse(pb.GenerateClientConfigurationRequest, await call.request())
        if self.client_config is None:
            raise GRPCError(Status.UNIMPLEMENTED, "this node holds no CA key to issue client certificates")
        roles = list(dict.fromkeys(req.roles)) or [auth.ADMIN]
        bad = [r for r in roles if r not in auth.ROLES]
        if bad:
            raise GRPCError(Status.INVALID_ARGUMENT,
                            f"roles: unknown {cap(str(bad), ECHO_CHARS)}, expected some of {sorted(auth.ROLES)}")
        if not 0 <= req.crt_ttl <= MAX_CLIENT_CRT_TTL:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"crt_ttl: {req.crt_ttl} s, expected 0 (one year) to {MAX_CLIENT_CRT_TTL} s (ten years)",
            )
        ttl = int(req.crt_ttl) or DEFAULT_CLIENT_CRT_TTL
        if inspect.iscoroutinefunction(self.client_config):
            resp = await self.client_config(roles, ttl)
        else:
            resp = await anyio.to_thread.run_sync(self.client_config, roles, ttl)
        await call.send(bytes(resp))


def _read_kmsg(fd: int) -> bytes:
    out = bytearray()
    while len(out) < 64 * 1024:
        try:
            rec = os.read(fd, 8192)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno == 32:  # EPIPE: records overwritten while reading; continue with newer ones
                continue
            raise
        if not rec:
            break
        prefix, _, msg = rec.partition(b";")
        fields = prefix.split(b",")
        try:
            usec = int(fields[2])
        except (IndexError, ValueError):
            usec = 0
        out += b"[%5d.%06d] " % (usec // 1_000_000, usec % 1_000_000) + msg.split(b"\n")[0] + b"\n"
    return bytes(out)


def _read_processes() -> list[pb.ProcessInfo]:
    out = []
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        rest = stat[stat.rfind(")") + 2 :].split()
        try:
            exe = os.readlink(os.path.join(entry.path, "exe"))
        except OSError:
            exe = ""
        out.append(
            pb.ProcessInfo(
                pid=int(entry.name),
                ppid=int(rest[1]),
                state=rest[0],
                threads=int(rest[17]),
                cpu_time=(int(rest[11]) + int(rest[12])) / tick,
                virtual_memory=int(rest[20]),
                resident_memory=int(rest[21]) * page,
                command=comm,
                executable=exe,
                args=" ".join(a.decode(errors="replace") for a in cmdline if a),
            )
        )
    return sorted(out, key=lambda p: p.pid)
