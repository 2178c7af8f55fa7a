"""Start ``machined`` as a real process for the API tests and stop it afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def machined(state_dir: Path, *args: str, wait_for: str = "kosconfig", timeout: float = 30) -> Iterator[str]:
    """Run ``machined --state-dir DIR --listen 127.0.0.1:0 ARGS``; yields its endpoint once
    ``DIR/<wait_for>`` exists (``kosconfig``: full API; ``api-endpoint``: any API)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kos.machined.main", "--state-dir", str(state_dir), "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout
        # machined writes kosconfig just before api-endpoint: wait for both
        while not ((state_dir / wait_for).exists() and (state_dir / "api-endpoint").exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.poll() is not None and proc.stderr else ""
                raise RuntimeError(f"machined did not start: {err}")
            time.sleep(0.05)
        yield (state_dir / "api-endpoint").read_text().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kosctl(*args: str, kosconfig: Path | None = None, timeout: float = 30, check: bool = False,
           ) -> subprocess.CompletedProcess[str]:
    """Run ``kosctl ARGS`` as a subprocess (with ``KOSCONFIG``); returns the completed process."""
    env = dict(os.environ)
    if kosconfig is not None:
        env["KOSCONFIG"] = str(kosconfig)
    return subprocess.run(
        [sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env, capture_output=True, text=True,
        timeout=timeout, check=check,
    )


def wait_file(path: Path, timeout: float = 20) -> None:
    """Block until ``path`` exists (machined writes its files atomically)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)
