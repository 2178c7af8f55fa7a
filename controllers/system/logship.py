"""machined's log sent to ``machine.logging.destinations``: LogDestinationSpecs -> a
``LogShipper`` -> LogDestinationStatuses (lines sent, dropped, last error).

``LogShipper.processor`` is a structlog processor machined installs once (before its JSON
renderer): every log entry is queued, as one JSON object per line (``json_lines``: the entry's
keys plus the destination's ``extraTags``), to each destination's bounded queue without
blocking; a daemon thread per destination sends them over UDP (one datagram per line) or TCP
(reconnecting with backoff). A full queue or an unreachable destination drops lines and counts
them; logging never waits on the network.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio

from kos.controllers.runtime import ControllerRuntime
from kos.controllers.system.apply import ApplyController
from kos.resources.runtime import LogDestinationSpecSpec, LogDestinationStatusSpec

QUEUE_LINES = 2048
MAX_LINE = 64 * 1024


@dataclass
class _Destination:
    endpoint: str
    tags: dict[str, str]
    q: queue.Queue[bytes | None] = field(default_factory=lambda: queue.Queue(QUEUE_LINES))
    sent: int = 0
    dropped: int = 0
    error: str = ""
    thread: threading.Thread | None = None

    def run(self) -> None:
        u = urlsplit(self.endpoint)
        host, port, udp = u.hostname or "", u.port or 0, u.scheme == "udp"
        sock: socket.socket | None = None
        delay = 0.2
        while True:
            line = self.q.get()
            if line is None:
                break
            try:
                if sock is None:
                    sock = socket.create_connection((host, port), timeout=2.0) if not udp else \
                        socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
                if udp:
                    sock.sendto(line, (host, port))
                else:
                    sock.sendall(line)
                self.sent += 1
                self.error = ""
                delay = 0.2
            except OSError as exc:
                self.dropped += 1
                self.error = f"{type(exc).__name__}: {exc}"
                if sock is not None:
                    sock.close()
                    sock = None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if sock is not None:
            sock.close()


class LogShipper:
    """Tees structured log entries to network destinations (thread-safe, never blocks)."""

    def __init__(self) -> None:
        self._dests: dict[str, _Destination] = {}
        self._lock = threading.Lock()

    def processor(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        dests = list(self._dests.values())
        if dests:
            entry = dict(event_dict)
            entry.setdefault("level", method)
            for d in dests:
                try:
                    line = json.dumps({**entry, **d.tags}, default=str)[:MAX_LINE] + "\n"
                    d.q.put_nowait(line.encode())
                except queue.Full:
                    d.dropped += 1
        return event_dict

    def ensure(self, endpoint: str, tags: dict[str, str]) -> None:
        with self._lock:
            cur = self._dests.get(endpoint)
            if cur is not None:
                cur.tags = dict(tags)
                return
            d = _Destination(endpoint, dict(tags))
            d.thread = threading.Thread(target=d.run, name=f"logship:{endpoint}", daemon=True)
            d.thread.start()
            self._dests[endpoint] = d

    def remove(self, endpoint: str) -> None:
        with self._lock:
            d = self._dests.pop(endpoint, None)
        if d is not None:
            try:
                d.q.put_nowait(None)
            except queue.Full:
                d.q.get_nowait()
                d.q.put_nowait(None)

    def endpoints(self) -> Sequence[str]:
        return sorted(self._dests)

    def stats(self, endpoint: str) -> tuple[int, int, str]:
        d = self._dests.get(endpoint)
        return (d.sent, d.dropped, d.error) if d is not None else (0, 0, "")


SHIPPER = LogShipper()
"""The process's shipper: machined installs ``SHIPPER.processor`` in its structlog chain."""


class LogDestinationApplyController(ApplyController):
    name = "system.LogDestinationApplyController"
    spec_type = LogDestinationSpecSpec
    status_type = LogDestinationStatusSpec

    def __init__(self, *, shipper: LogShipper | None = None, status_interval: float = 10.0) -> None:
        self.shipper = SHIPPER if shipper is None else shipper
        self.status_interval = status_interval

    async def run(self, rt: ControllerRuntime) -> None:
        async def tick() -> None:  # the counters move without a spec change
            while True:
                await anyio.sleep(self.status_interval)
                rt.queue_reconcile()

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            await super().run(rt)
            tg.cancel_scope.cancel()

    async def apply(self, rt: ControllerRuntime, id_: str, spec: Any, old: Any | None) -> Any:
        self.shipper.ensure(spec.endpoint, spec.extra_tags)
        sent, dropped, error = self.shipper.stats(spec.endpoint)
        return LogDestinationStatusSpec(sent=sent, dropped=dropped, error=error)

    async def undo(self, rt: ControllerRuntime, id_: str, status: Any) -> None:
        self.shipper.remove(id_)
