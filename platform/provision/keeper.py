"""The keeper of one namespace node: starts it, and starts it again when it reboots.

The provisioner runs ``python -m kos.platform.provision.keeper --state FILE -- CMD...`` where
CMD is the ``nsenter ... unshare ... nodeinit ...`` line that makes the node. When the node's
PID 1 calls reboot(2) the kernel ends the node's PID namespace with SIGHUP (restart) or
SIGINT (power off), and ``unshare`` re-raises that signal, so:

* ended by SIGHUP: a reboot: the keeper starts CMD again (same namespaces, same STATE and
  EPHEMERAL directories, so the node keeps its config and identity);
* anything else (SIGINT, exit code, SIGKILL): the node is down; the keeper exits.

SIGTERM to the keeper is passed to the node's PID 1 (a graceful shutdown) and the keeper
exits once the node is down. ``--state FILE`` records JSON ``{"boots": N, "last": "..."}``
after each start and end, which ``kosctl cluster show`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _record(path: Path | None, **data: object) -> None:
    if path is None:
        return
    try:
        old = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        old = {}
    old.update(data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(old))
    os.replace(tmp, path)


def keep(command: list[str], state: Path | None, *, max_boots: int = 1000) -> int:
    stopping = False
    proc: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if proc is not None:
            for pid1 in _children(proc.pid):
                try:
                    os.kill(pid1, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    boots = 0
    while boots < max_boots:
        boots += 1
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        _record(state, boots=boots, last="running", pid=proc.pid, since=time.time())
        rc = proc.wait()
        if rc == -signal.SIGHUP and not stopping:
            _record(state, last="rebooting")
            print(f"keeper: node rebooted (boot {boots}); starting it again", file=sys.stderr, flush=True)
            continue
        what = {-signal.SIGINT: "poweroff"}.get(rc, f"exit {rc}")
        _record(state, last=what, pid=0)
        print(f"keeper: node down ({what})", file=sys.stderr, flush=True)
        return 0
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kos-keeper", description="start a namespace node and restart it on reboot")
    p.add_argument("--state", type=Path, help="JSON file recording boots and the last state")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("the node command is required after --")
    return keep(command, args.state)


if __name__ == "__main__":
    sys.exit(main())
