"""Shared pieces of the benchmarks that run a local namespace cluster (``idle_cpu``,
``api_fanout``): create/destroy through kosctl, the nodes' processes, RSS and CPU time from
/proc, the load average and a calibration loop (so figures from different machines or busy
moments can be compared as ratios)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.calibrate import calibration_ms, conditions
from kos.platform.provision.namespaces import ClusterState, node_pid1

__all__ = ["calibration_ms", "conditions"]  # re-exported: older bench scripts import them from here

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return out


class LocalCluster:
    """``kosctl cluster create`` of a uniquely named cluster under ``root``; a context manager
    that destroys it."""

    def __init__(self, root: Path, controlplanes: int = 1, workers: int = 1, prefix: str = "b") -> None:
        self.root = root
        self.name = f"{prefix}{os.getpid() % 100000}{controlplanes}{workers}"
        self.env = dict(os.environ, KOSCONFIG=str(root / "kosconfig"))
        self.controlplanes, self.workers = controlplanes, workers

    def kosctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=self.env,
                              capture_output=True, text=True)

    def __enter__(self) -> LocalCluster:
        proc = self.kosctl("cluster", "create", "--name", self.name, "--state-root", str(self.root),
                           "--controlplanes", str(self.controlplanes), "--workers", str(self.workers),
                           "--wait-timeout", "120")
        if proc.returncode != 0 and "is not healthy yet" in proc.stderr:
            failed = [ln.strip() for ln in proc.stdout.splitlines() if "FAILED" in ln]
            print(f"note: the cluster is up but not every health check passed: {'; '.join(failed)}")
        elif proc.returncode != 0:
            self.__exit__()
            raise SystemExit(f"cluster create failed:\n{proc.stdout}\n{proc.stderr}")
        self.state = ClusterState.load(self.root / self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        self.kosctl("cluster", "destroy", "--name", self.name, "--state-root", str(self.root))

    def pid1(self, node: str) -> int:
        pid = node_pid1(self.state.node(node))
        if pid is None:
            raise SystemExit(f"node {node} is not running")
        return pid
