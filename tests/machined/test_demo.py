"""The README's main job (the runtime demo) runs to completion and shows the converged outputs."""

import subprocess
import sys


def test_demo_runs_and_converges() -> None:
    proc = subprocess.run([sys.executable, "-m", "kos.machined.demo"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "destroyed  DemoPlacements.demo.kos.dev  cache" in proc.stdout
    assert "'workloads': 1, 'replicas': 5" in proc.stdout
    assert "digraph controllers" in proc.stdout
