"""PID-1 duties for real, inside ``unshare --pid --mount``: early mounts, orphan reaping that
leaves supervised children's exit codes alone, SIGTERM -> shutdown via reboot(2) (which the
kernel turns into SIGINT for the namespace's init), SIGINT -> reboot (SIGHUP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kos.machined.init import Reaper

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PID1 = r"""
import json, os, sys, time, anyio, structlog
from kos.machined import init
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

def say(**kw):
    print(json.dumps(kw), flush=True)

async def main():
    mounted = init.mount_early(sys.argv[1])
    say(pid=os.getpid(), mounted=sorted(os.path.relpath(m, sys.argv[1]) for m in mounted))
    reaper = init.Reaper(grace=0.3, interval=0.5)
    requests = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(reaper.run)
        tg.start_soon(init.signal_actions, lambda a, s: requests.append(a))
        # an orphan: a child that forks a grandchild and exits; the grandchild exits later
        if os.fork() == 0:
            if os.fork() == 0:
                time.sleep(0.2)
                os._exit(0)
            os._exit(0)
        # a supervised child: its exit status must reach us, not the reaper
        proc = await anyio.run_process([sys.executable, "-c", "import sys; sys.exit(7)"], check=False)
        for _ in range(100):
            if len(reaper.reaped) >= 2:
                break
            await anyio.sleep(0.1)
        zombies = init._zombie_children(1)
        say(reaped=len(reaper.reaped), zombies=len(zombies), child_rc=proc.returncode)
        while not requests:
            await anyio.sleep(0.05)
        say(request=requests[0].value)
        tg.cancel_scope.cancel()
    init.power_off(requests[0], unmount=False)
    say(error="power_off returned")

anyio.run(main)
"""


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen(
        ["unshare", "--fork", "--pid", "--mount", "--propagation", "private", "--mount-proc",
         sys.executable, "-c", PID1, str(tmp_path / "root")],
        stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip


def _pid1_of(unshare_pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.02)
    raise AssertionError("no PID 1 under unshare")


@pytest.mark.parametrize(("sig", "action", "exit_signal"), [
    (signal.SIGTERM, "shutdown", signal.SIGINT),
    (signal.SIGINT, "reboot", signal.SIGHUP),
])  # fmt: skip
def test_pid1_mounts_reaps_and_powers_off(
    tmp_path: Path, sig: signal.Signals, action: str, exit_signal: signal.Signals
) -> None:
    proc = _start(tmp_path)
    assert proc.stdout is not None
    try:
        first = json.loads(proc.stdout.readline())
        assert first["pid"] == 1
        assert {"proc", "sys", "dev", "dev/pts", "run", "tmp"} <= set(first["mounted"])
        second = json.loads(proc.stdout.readline())
        # the forked child nobody waited for and the orphaned grandchild were reaped; the
        # supervised child's exit code was not stolen
        assert second == {"reaped": 2, "zombies": 0, "child_rc": 7}
        os.kill(_pid1_of(proc.pid), sig)
        third = json.loads(proc.stdout.readline())
        assert third == {"request": action}
        rc = proc.wait(timeout=20)
        # reboot(2) in a PID namespace ends its init with SIGHUP (restart) or SIGINT (power off);
        # unshare re-raises it
        assert rc == -exit_signal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_reaper_leaves_young_zombies_alone() -> None:
    """A zombie is collected only on its second sighting ``grace`` seconds later."""
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    deadline = time.monotonic() + 5
    r = Reaper(grace=10.0)
    while time.monotonic() < deadline and pid not in r._seen:
        r.scan()
        time.sleep(0.01)
    assert pid in r._seen and r.scan() == []  # first sighting, too young
    assert r.scan(now=time.monotonic() + 11) == [pid]
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_reaper_walks_proc_only_when_a_child_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle scan asks the kernel (waitid WNOWAIT) and reads no /proc; a waiting zombie is
    still found, and the look reaps nothing (its status stays for its parent's waitpid)."""
    from kos.machined import init

    walks: list[int] = []
    real = init._zombie_children
    monkeypatch.setattr(init, "_zombie_children", lambda parent: walks.append(parent) or real(parent))
    r = Reaper(grace=10.0)
    while init._has_waitable_child():  # zombies other tests may have left to this process
        os.waitpid(-1, os.WNOHANG)
    assert r.scan() == [] and walks == []
    pid = os.fork()
    if pid == 0:
        os._exit(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid not in r._seen:
        r.scan()
        time.sleep(0.01)
    assert pid in r._seen and walks
    assert os.waitpid(pid, 0) == (pid, 5 << 8)  # WNOWAIT left the exit status to its parent
    assert r.scan() == [] and r._seen == {}
