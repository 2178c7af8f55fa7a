"""A handle on a cluster made by ``kosctl cluster create --name NAME --state-root ROOT`` in a
test: kosctl (as a subprocess, with the test's environment) against it, its state directory
and the nodes' console logs for failure messages."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kos.platform.provision.namespaces import ClusterState


@dataclass
class KosCluster:
    name: str
    root: Path
    env: dict[str, str]

    @property
    def dir(self) -> Path:
        return self.root / self.name

    def kosctl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kosctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def ctl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """kosctl against this cluster's context."""
        return self.kosctl("--context", self.name, *args, **kw)

    def state(self) -> ClusterState:
        return ClusterState.load(self.dir)

    def consoles(self, lines: int = 30) -> str:
        """The last non-debug lines of every node's console log (for failure messages)."""
        out = []
        for log in sorted(self.dir.glob("*/console.log")):
            kept = [ln for ln in log.read_text(errors="replace").splitlines() if '"debug"' not in ln]
            out.append(f"--- {log}\n" + "\n".join(kept[-lines:]))
        return "\n".join(out)
