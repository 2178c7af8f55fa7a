"""The keeper of one namespace node (or of a cluster's helper daemon): starts it, and starts
it again when it reboots or dies.

The provisioner runs ``python -m kos.platform.provision.keeper --state FILE -- CMD...`` where
CMD is the ``nsenter ... unshare ... nodeinit ...`` line that makes the node (the keeper is
started in the node's cgroups, see ``cgroups``, so what the node starts stays findable even if
the keeper dies; see ``sweep``). When the node's PID 1 calls reboot(2) the kernel ends the
node's PID namespace with SIGHUP (restart) or SIGINT (power off), and ``unshare`` re-raises
that signal, so:

* ended by SIGHUP: a reboot: the keeper starts CMD again at once (same namespaces, same STATE
  and EPHEMERAL directories, so the node keeps its config and identity);
* ended by SIGINT: a power off: the node is down; the keeper exits;
* anything else is a crash (PID 1 killed or exited; ``unshare`` cannot re-raise SIGKILL and
  exits 1 saying "sigprocmask unblock failed"): the node is started again, keeping its state,
  as a crashed VM would be, after a delay that doubles on each crash in a row (1 s up to
  ``--max-delay``) and starts over once a boot has lasted a minute.

With ``--service`` CMD is a plain daemon (the cluster's port forwarder): SIGTERM goes to it
directly and it is started again whenever it ends, however it ends, until the keeper is told
to stop.

SIGTERM to the keeper is passed to the node's PID 1 (a graceful shutdown) and the keeper
exits once the node is down. ``--state FILE`` records JSON ``{"boots": N, "crashes": N,
"last": "...", "pid": N}`` after each start and end, which ``kosctl cluster show`` reads.
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

STABLE_AFTER = 60.0  # a boot lasting this long resets the crash delay


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


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit {rc}"


def keep(command: list[str], state: Path | None, *, max_boots: int = 100000, service: bool = False,
         max_delay: float = 30.0) -> int:
    stopping = False
    proc: subprocess.Popen[bytes] | None = None
    wake_r, wake_w = os.pipe()

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        os.write(wake_w, b"x")
        if proc is None:
            return
        for pid in [proc.pid] if service else _children(proc.pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    boots = crashes = 0
    delay = 0.0
    while boots < max_boots and not stopping:
        boots += 1
        started = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        _record(state, boots=boots, crashes=crashes, last="running", pid=proc.pid, since=time.time())
        rc = proc.wait()
        if not service and rc == -signal.SIGINT:
            _record(state, last="poweroff", pid=0)
            print("keeper: node powered off", file=sys.stderr, flush=True)
            return 0
        if stopping:
            break
        if not service and rc == -signal.SIGHUP:
            _record(state, last="rebooting")
            print(f"keeper: node rebooted (boot {boots}); starting it again", file=sys.stderr, flush=True)
            delay = 0.0
            continue
        crashes += 1
        delay = 1.0 if time.monotonic() - started > STABLE_AFTER else min(max(delay * 2, 1.0), max_delay)
        what = _describe(rc)
        _record(state, last=f"crashed ({what})", crashes=crashes, pid=0)
        print(f"keeper: {'daemon' if service else 'node'} ended ({what}); starting it again in {delay:.0f} s",
              file=sys.stderr, flush=True)
        _sleep_unless_stopped(wake_r, delay)
    what = "stopped" if stopping else "gave up"
    _record(state, last=what, pid=0)
    print(f"keeper: {what}", file=sys.stderr, flush=True)
    return 0 if stopping else 1


def _sleep_unless_stopped(fd: int, seconds: float) -> None:
    import select

    select.select([fd], [], [], seconds)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kos-keeper", description="start a namespace node and restart it on reboot")
    p.add_argument("--state", type=Path, help="JSON file recording boots and the last state")
    p.add_argument("--service", action="store_true", help="CMD is a plain daemon: restart it whenever it ends")
    p.add_argument("--max-delay", type=float, default=30.0, help="longest delay before a restart after crashes")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("the node command is required after --")
    return keep(command, args.state, service=args.service, max_delay=args.max_delay)


if __name__ == "__main__":
    sys.exit(main())
