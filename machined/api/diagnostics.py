"""Diagnostics RPCs of the machine service: Netstat, Time, SystemStat and
ControllerRuntimeDependencies.

``DiagnosticsAPI(state, runtimes)`` is a machine-API extension:

* Netstat: the sockets of machined's network namespace from ``/proc/net/{tcp,tcp6,udp,udp6}``
  with, on request, the owning process (socket inodes matched against ``/proc/<pid>/fd``);
  listening = TCP LISTEN or an unconnected UDP socket;
* Time: one SNTP exchange with the given server (``host`` or ``host:port``), else with the
  first configured one (``TimeServerStatuses(net/timeservers)``) that answers; the offset is
  what the node's clock is behind (+) or ahead (-); UNAVAILABLE when no server answers,
  FAILED_PRECONDITION when none is configured;
* SystemStat: CPU times, load averages, uptime and process counts (``/proc``), for the dashboard;
* ControllerRuntimeDependencies: the controller/resource edges and each controller's live
  counters (reconciles, errors, crashes, restarts, queue depth, last error) of the node's
  controller runtimes (``runtimes()`` returns them; none when controllers do not run).
"""

from __future__ import annotations

import datetime
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.endpoint import split_endpoint
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.platform.network.sntp import SNTPError, query
from kos.resources.core import NotFoundError, Pointer, State, echo
from kos.resources.network import NAMESPACE as NET_NAMESPACE
from kos.resources.network import TimeServerStatusSpec

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE",
    8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}
MAX_PROCS = 100_000


def _addr(text: str, v6: bool) -> tuple[str, int]:
    host, _, port = text.partition(":")
    raw = bytes.fromhex(host)
    if v6:  # four host-order 32-bit words
        raw = b"".join(struct.pack("<I", struct.unpack(">I", raw[i:i + 4])[0]) for i in range(0, 16, 4))
        return socket.inet_ntop(socket.AF_INET6, raw), int(port, 16)
    return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)


def read_sockets(protos: Sequence[str], proc: str = "/proc") -> list[pb.ConnectRecord]:
    out = []
    for proto in protos:
        try:
            with open(f"{proc}/net/{proto}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        v6 = proto.endswith("6")
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            lip, lport = _addr(fields[1], v6)
            rip, rport = _addr(fields[2], v6)
            st = int(fields[3], 16)
            tx, rx = (int(x, 16) for x in fields[4].split(":"))
            if proto.startswith("tcp"):
                state = TCP_STATES.get(st, str(st))
            else:
                state = "ESTABLISHED" if st == 1 else "UNCONNECTED"
            out.append(pb.ConnectRecord(
                l4_proto=proto, localip=lip, localport=lport, remoteip=rip, remoteport=rport, state=state,
                txqueue=tx, rxqueue=rx, inode=int(fields[9]),
            ))
    return out


def socket_owners(proc: str = "/proc") -> dict[int, tuple[int, str]]:
    """socket inode -> (pid, command) from every process's open descriptors."""
    owners: dict[int, tuple[int, str]] = {}
    try:
        pids = [e for e in os.listdir(proc) if e.isdigit()][:MAX_PROCS]
    except OSError:
        return owners
    for pid in pids:
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:
            continue
        comm = ""
        for fd in fds:
            try:
                target = os.readlink(f"{proc}/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                if not comm:
                    try:
                        with open(f"{proc}/{pid}/comm") as f:
                            comm = f.read().strip()
                    except OSError:
                        comm = "?"
                owners.setdefault(int(target[8:-1]), (int(pid), comm))
    return owners


def read_system_stat(proc: str = "/proc") -> pb.SystemStatResponse:
    """CPU times, load, uptime and process counts from /proc (blocking)."""
    tick = os.sysconf("SC_CLK_TCK")
    resp = pb.SystemStatResponse(hostname=socket.gethostname(), cpu_count=os.cpu_count() or 0)
    with open(f"{proc}/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == "cpu":
                v = [int(x) / tick for x in fields[1:9]] + [0.0] * 8
                resp.cpu_total = pb.CpuStat(user=v[0], nice=v[1], system=v[2], idle=v[3], iowait=v[4], irq=v[5],
                                            soft_irq=v[6], steal=v[7])
            elif fields[0] == "btime":
                resp.boot_time = int(fields[1])
            elif fields[0] == "ctxt":
                resp.context_switches = int(fields[1])
            elif fields[0] == "procs_running":
                resp.process_running = int(fields[1])
    with open(f"{proc}/loadavg") as f:
        load = f.read().split()
    resp.load1, resp.load5, resp.load15 = (float(x) for x in load[:3])
    resp.process_count = int(load[3].split("/")[1])
    with open(f"{proc}/uptime") as f:
        resp.uptime = float(f.read().split()[0])
    return resp


def listening(r: pb.ConnectRecord) -> bool:
    return r.state == "LISTEN" or (r.l4_proto.startswith("udp") and r.remoteport == 0)


class DiagnosticsAPI:
    def __init__(self, state: State, runtimes: Callable[[], Sequence[Any]] = list, *, netns: str | None = None) -> None:
        self.state = state
        self.runtimes = runtimes
        self.netns = netns

    def register(self, d: Dispatcher) -> None:
        p = auth.MACHINE
        unary = Cardinality.UNARY_UNARY
        d.add(p + "Netstat", self.netstat, unary)
        d.add(p + "Time", self.time, unary)
        d.add(p + "ControllerRuntimeDependencies", self.dependencies, unary)
        d.add(p + "SystemStat", self.system_stat, unary)

    async def netstat(self, call: Call) -> None:
        req = parse(pb.NetstatRequest, await call.request())
        if req.filter not in set(pb.NetstatRequestFilter):
            raise GRPCError(Status.INVALID_ARGUMENT,
                            f"filter: unknown value {int(req.filter)} (ALL, CONNECTED, LISTENING)")
        chosen = [n for n, on in (("tcp", req.tcp), ("tcp6", req.tcp6), ("udp", req.udp), ("udp6", req.udp6)) if on]
        protos = chosen or ["tcp", "tcp6", "udp", "udp6"]
        records = await anyio.to_thread.run_sync(read_sockets, protos)
        if req.filter == pb.NetstatRequestFilter.LISTENING:
            records = [r for r in records if listening(r)]
        elif req.filter == pb.NetstatRequestFilter.CONNECTED:
            records = [r for r in records if not listening(r)]
        if req.pid:
            owners = await anyio.to_thread.run_sync(socket_owners)
            for r in records:
                r.pid, r.process = owners.get(r.inode, (0, ""))
        await call.send(bytes(pb.NetstatResponse(records=records)))

    async def _servers(self) -> list[str]:
        try:
            r = await self.state.get(Pointer(NET_NAMESPACE, TimeServerStatusSpec.definition.type, "timeservers"))
        except NotFoundError:
            return []
        return list(r.spec.time_servers)

    async def time(self, call: Call) -> None:
        req = parse(pb.TimeRequest, await call.request())
        servers = [req.server] if req.server else await self._servers()
        if not servers:
            raise GRPCError(Status.FAILED_PRECONDITION,
                            "no time server configured (machine.time.servers): name one with --check SERVER")
        errors = []
        for server in servers:
            try:
                host, port = split_endpoint(server, 123)
            except ValueError as exc:
                raise GRPCError(Status.INVALID_ARGUMENT, f"server: {echo(server)}: {exc}") from None
            try:
                sample = await query(self.netns, host, port=port, timeout=3.0)
            except SNTPError as exc:
                errors.append(str(exc))
                continue
            now = time.time()
            resp = pb.TimeResponse(
                server=server, offset=sample.offset, rtt=sample.delay,
                localtime=datetime.datetime.fromtimestamp(now, tz=datetime.UTC),
                remotetime=datetime.datetime.fromtimestamp(now + sample.offset, tz=datetime.UTC),
            )
            await call.send(bytes(resp))
            return
        raise GRPCError(Status.UNAVAILABLE, "no time server answered: " + "; ".join(errors))

    async def system_stat(self, call: Call) -> None:
        parse(pb.SystemStatRequest, await call.request())
        await call.send(bytes(await anyio.to_thread.run_sync(read_system_stat)))

    async def dependencies(self, call: Call) -> None:
        parse(pb.ControllerRuntimeDependenciesRequest, await call.request())
        edges, stats = [], []
        for rt in self.runtimes():
            for e in rt.dependency_graph():
                edges.append(pb.ControllerDependencyEdge(
                    controller=e.controller, namespace=e.namespace, type=e.type, id=e.id or "",
                    edge_type=str(e.edge_type),
                ))
            for name, m in rt.metrics().items():
                stats.append(pb.ControllerStats(
                    name=name, reconciles=m["reconciles"], errors=m["errors"], crashes=m["crashes"],
                    restarts=m["restarts"], queue_depth=m["queue_depth"], last_error=m.get("last_error", ""),
                ))
        await call.send(bytes(pb.ControllerRuntimeDependenciesResponse(edges=edges, controllers=stats)))
