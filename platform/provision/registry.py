"""The cluster's image registry, the air-gapped Talos way: Debian's ``docker-registry`` on the
cluster's gateway address (inside the cluster's network namespace, port ``PORT``), holding
the locally built Kubernetes images under their mirror paths
(``kos.platform.image.registry.push_archive``); every node's ``machine.registries.mirrors``
names it for ``registry.k8s.io``, ``ghcr.io`` and ``docker.io`` (``mirrors_patch``), so
containerd pulls the upstream names from it.

``ClusterRegistry(cluster_dir, netns, gateway)``: ``start()`` runs the server (its pid in
``<cluster dir>/registry.pid``, storage and log in ``<cluster dir>/registry/``);
``push(archives)`` pushes image archives (blocking: seconds per image); ``stop()`` ends it.
Both provisioners' ``destroy`` sweep whatever runs in the cluster's network namespace too.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kos.platform.image.registry import Client, RegistryError, Server, push_archive
from kos.platform.network.netns import run_in_netns

PORT = 5000
MIRRORED = ("registry.k8s.io", "ghcr.io", "docker.io")
PIDFILE = "registry.pid"
STATE_DIR = "registry"

__all__ = ["MIRRORED", "PORT", "ClusterRegistry", "RegistryError", "mirrors_patch"]


def mirrors_patch(endpoint: str, hosts: Iterable[str] = MIRRORED) -> dict[str, Any]:
    """The config patch that points ``hosts`` at the plain-HTTP registry ``endpoint``
    (``IP:PORT``)."""
    return {"machine": {"registries": {"mirrors": {h: {"endpoints": [f"http://{endpoint}"]} for h in hosts}}}}


class ClusterRegistry:
    def __init__(self, cluster_dir: Path, netns: str, gateway: str, port: int = PORT) -> None:
        self.dir = cluster_dir
        self.netns = netns
        self.endpoint = f"{gateway}:{port}"

    @property
    def _netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    def start(self, timeout: float = 30.0) -> int:
        """Start ``docker-registry`` inside the cluster's network namespace (its child process
        is forked from a thread that joined it) and wait until it answers; returns its pid."""
        server = Server(self.dir / STATE_DIR, self.endpoint)
        run_in_netns(self._netns_path, lambda: server.start(timeout))
        assert server.proc is not None
        (self.dir / PIDFILE).write_text(str(server.proc.pid))
        return server.proc.pid

    def push(self, archives: Iterable[Path]) -> list[str]:
        """Push each archive (its blobs, then its manifest); returns the ``repo:tag`` pushed."""
        client = Client(self.endpoint, timeout=120.0)
        paths = list(archives)
        return run_in_netns(self._netns_path, lambda: [push_archive(client, p)[0] for p in paths])

    def pid(self) -> int | None:
        """The running registry's pid (checked against its command line), or None."""
        try:
            pid = int((self.dir / PIDFILE).read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"docker-registry" in cmdline and str(self.dir / STATE_DIR).encode() in cmdline else None

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM (then SIGKILL) the registry; True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)
        (self.dir / PIDFILE).unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a child of ours that has exited is reaped (also when it
    exited between the two looks, so no zombie is left behind)."""
    ours = True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        ours = False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state != "Z":
        return True
    if ours:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return False
