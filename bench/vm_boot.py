"""QEMU node boot phases and idle machined in the VM (issue 17):
``python -m bench.vm_boot [--boots 1] [--window 60] [--settle 30] [--image DIR]``.

Builds the image of this checkout without Kubernetes (``rootfs-build/build --no-k8s``, as the
VM tests do: a 1-vCPU TCG VM cannot run a control plane quickly; ``--image`` uses a built one)
and runs ``kosctl cluster create --provisioner qemu --workers 0`` ``--boots`` times. Each boot
is cut into phases, in seconds of guest uptime:

* from the serial console: kernel (0 -> the initramfs starts), initramfs (modules, slot
  choice, squashfs mounted -> switch_root), Python start (-> /sbin/init has imported its
  module), init (mounts, network -> exec machined), machined (exec -> the API port accepts
  connections, as the boot confirmer sees it);
* from the steps ``kosctl cluster create`` prints, timed on the host and mapped to guest
  uptime by the offset between the host clock and the guest's uptime measured right after
  (a SystemStat call): API port -> the maintenance config accepted (machined has loaded the
  node and applied it), -> the API over mutual TLS, -> etcd bootstrapped, -> healthy.

Then, once the node is healthy and ``--settle`` seconds quiet, idle machined over ``--window``
seconds: machined's own utime+stime delta (``/proc/1/stat``) over the guest's uptime delta, in
% of the one vCPU, with its voluntary context switches per second (wakeups) and the guest's
total idle share (``/proc/stat``), all read inside the guest through the Read RPC
(``kosctl read``'s call). The reads cost machined some CPU themselves: one round is measured
right after the window and printed (and subtracted in the "net" figure).

Beside the figures: the load average and calibration loop before and after, and a baseline
measured in the same run (``python3 -I -c pass`` on the host): under TCG the guest runs some
10x slower than the host, and slower still when the host is busy.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.calibrate import beside, conditions

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
CIDR = "10.198.0.0/24"
STEPS = {  # kosctl cluster create's step lines -> the event they follow
    "applying the controlplane config": "maintenance API answered",
    "client config context": "config accepted",
    "bootstrapping etcd": "API over mutual TLS",
    "waiting for the cluster to be healthy": "etcd bootstrapped",
}
CONSOLE = {
    "initramfs start": r"kos initramfs: started at ([\d.]+) s uptime",
    "initramfs handover": r"kos initramfs: booting slot \w from \S+ at ([\d.]+) s uptime",
    "Python up": r"Python up at ([\d.]+) s",
    "exec machined": r"init at ([\d.]+) s uptime",
    "API port accepts": r"kos: API up at ([\d.]+) s uptime",
}
PHASES = [  # (name, from event, to event)
    ("kernel", None, "initramfs start"),
    ("initramfs", "initramfs start", "initramfs handover"),
    ("Python start", "initramfs handover", "Python up"),
    ("init (mounts, network)", "Python up", "exec machined"),
    ("machined -> API port", "exec machined", "API port accepts"),
    ("API port -> config accepted", "API port accepts", "config accepted"),
    ("config -> mTLS API", "config accepted", "API over mutual TLS"),
    ("mTLS API -> etcd bootstrapped", "API over mutual TLS", "etcd bootstrapped"),
    ("etcd bootstrapped -> healthy", "etcd bootstrapped", "healthy"),
]
TO_API = 5  # the first PHASES up to the API port


def python_pass_ms(rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def build_image(out: Path) -> Path:
    t0 = time.monotonic()
    proc = subprocess.run([str(REPO / "rootfs-build" / "build"), "--no-k8s", "--out", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"image build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    print(f"image built (--no-k8s) in {time.monotonic() - t0:.1f} s: {out}")
    return out


class Cluster:
    """One ``kosctl cluster create --provisioner qemu`` with its step lines timed as printed."""

    def __init__(self, root: Path, image: Path, index: int) -> None:
        self.root = root
        self.image = image
        self.name = f"vmb{os.getpid() % 100000}x{index}"
        self.env = dict(os.environ, KOSCONFIG=str(root / "kosconfig"))
        self.steps: dict[str, float] = {}  # event -> host time.time()
        self.output: list[str] = []

    def kosctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=self.env,
                              capture_output=True, text=True)

    def create(self, timeout: float) -> bool:
        cmd = [sys.executable, "-m", "kos.apis.kosctl.main", "cluster", "create", "--provisioner", "qemu",
               "--name", self.name, "--state-root", str(self.root / "state"), "--workers", "0", "--cidr", CIDR,
               "--image-dir", str(self.image), "--wait-timeout", str(timeout)]
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                now = time.time()
                self.output.append(line.rstrip())
                for marker, event in STEPS.items():
                    if marker in line and event not in self.steps:
                        self.steps[event] = now

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        rc = proc.wait()
        reader.join()
        self.steps["healthy"] = time.time()
        return rc == 0

    @property
    def node_dir(self) -> Path:
        return self.root / "state" / self.name / "cp-1"

    def console(self) -> str:
        try:
            return (self.node_dir / "console.log").read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self) -> None:
        self.kosctl("cluster", "destroy", "--name", self.name, "--state-root", str(self.root / "state"))


async def _read(conn: Any, path: str) -> str:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb

    out = b""
    async with conn.stream(auth.MACHINE + "Read", bytes(pb.ReadRequest(path=path))) as it:
        async for data in it:
            out += pb.Data().parse(data).bytes
    return out.decode()


async def guest_sample(conn: Any) -> dict[str, float]:
    """machined's CPU seconds and voluntary switches, the guest's CPU ticks, its uptime."""
    stat = (await _read(conn, "/proc/1/stat")).rsplit(")", 1)[1].split()
    status = await _read(conn, "/proc/1/status")
    cpu = (await _read(conn, "/proc/stat")).splitlines()[0].split()[1:]
    up = float((await _read(conn, "/proc/uptime")).split()[0])
    wakes = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("voluntary_ctxt_switches"))
    ticks = [int(x) for x in cpu[:8]]
    return {"machined": (int(stat[11]) + int(stat[12])) / TICK, "wakeups": wakes, "idle": ticks[3] + ticks[4],
            "total": sum(ticks), "uptime": up}


async def measure(c: Cluster, settle: float, window: float) -> dict[str, float]:
    import anyio

    from kos.apis.client import ClientConfig, Connection

    _, ctx = ClientConfig.load(c.root / "kosconfig").current(c.name)
    async with Connection.from_context(ctx, timeout=60) as conn:
        t0 = time.time()
        up = float((await _read(conn, "/proc/uptime")).split()[0])
        t1 = time.time()
        offset = (t0 + t1) / 2 - up  # host time of guest uptime 0
        await anyio.sleep(settle)
        a = await guest_sample(conn)
        await anyio.sleep(window)
        b = await guest_sample(conn)
        cost = await guest_sample(conn)
    dt = b["uptime"] - a["uptime"]
    used = b["machined"] - a["machined"]
    one_round = cost["machined"] - b["machined"]
    return {
        "offset": offset,
        "window": dt,
        "machined %": 100 * used / dt,
        "machined net %": 100 * max(0.0, used - one_round) / dt,
        "read round s": one_round,
        "wakeups/s": (b["wakeups"] - a["wakeups"]) / dt,
        "guest idle %": 100 * (b["idle"] - a["idle"]) / max(1, b["total"] - a["total"]),
    }


def events_of(c: Cluster, offset: float) -> dict[str, float]:
    """Event -> guest uptime."""
    out: dict[str, float] = {}
    text = c.console()
    for event, rx in CONSOLE.items():
        m = re.search(rx, text)
        if m:
            out[event] = float(m.group(1))
    for event, host in c.steps.items():
        out[event] = host - offset
    return out


def one_boot(root: Path, image: Path, index: int, settle: float, window: float,
             timeout: float) -> tuple[dict[str, float], dict[str, float]] | None:
    import anyio

    c = Cluster(root, image, index)
    try:
        started = time.time()
        ok = c.create(timeout)
        if not ok:
            print(f"boot {index}: cluster create failed:\n  " + "\n  ".join(c.output[-15:]))
            print("  console tail:\n  " + "\n  ".join(c.console().splitlines()[-10:]))
            return None
        pidfile = c.node_dir / "qemu.pid"
        qemu_start = pidfile.stat().st_mtime if pidfile.exists() else started
        idle = anyio.run(measure, c, settle, window)
        ev = events_of(c, idle["offset"])
        ev["QEMU started"] = qemu_start - idle["offset"]  # negative: before the kernel's uptime 0
        return ev, idle
    finally:
        c.destroy()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--boots", type=int, default=1)
    p.add_argument("--window", type=float, default=60.0, help="idle window in seconds (>= 60)")
    p.add_argument("--settle", type=float, default=30.0, help="seconds after healthy before the idle window")
    p.add_argument("--timeout", type=float, default=600.0, help="cluster create --wait-timeout")
    p.add_argument("--image", type=Path, help="a built image directory (default: build this checkout's)")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/vm_boot.py needs root (network namespaces, tap devices)")
    print(conditions("before"))
    base = python_pass_ms()
    print(f"baseline: host python3 -I -c pass {base:.0f} ms {beside()}")
    image = args.image or build_image(REPO / "build" / "kos-image" / "vmboot-out")
    runs: list[tuple[dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="kos-vmboot-") as tmp:
        for i in range(args.boots):
            r = one_boot(Path(tmp), image, i, args.settle, args.window, args.timeout)
            if r is not None:
                runs.append(r)
                print(f"boot {i}: healthy at {r[0]['healthy']:.1f} s uptime, API port at "
                      f"{r[0].get('API port accepts', -1):.1f} s {beside()}")
    if not runs:
        print(conditions("after"))
        return 1

    def med(key: str, src: int = 0) -> float:
        vals = [r[src][key] for r in runs if key in r[src]]
        return statistics.median(vals) if vals else float("nan")

    print(f"== boot phases of a 1-vCPU TCG VM, seconds of guest uptime, median of {len(runs)}")
    print(f"  QEMU start -> kernel uptime 0 (firmware, loading): {-med('QEMU started'):.2f} s")
    api = med("API port accepts")
    healthy = med("healthy")
    print(f"  {'phase':<32} {'seconds':>8} {'of API':>7} {'of healthy':>10}")
    for i, (name, a, b) in enumerate(PHASES):
        secs = med(b) - (med(a) if a else 0.0)
        share = f"{secs / api:7.0%}" if i < TO_API else " " * 7
        print(f"  {name:<32} {secs:8.2f} {share} {secs / healthy:10.0%}")
    print(f"  {'API port (uptime)':<32} {api:8.2f}")
    print(f"  {'healthy (uptime)':<32} {healthy:8.2f}")
    print(f"  API port = {api * 1000 / base:.0f}x the host's python3 -c pass (the guest runs ~10x slower under TCG)")
    print(f"== idle machined in the VM, {med('window', 1):.0f} s window after {args.settle:.0f} s quiet "
          "(Read RPC of /proc/1/stat, /proc/1/status, /proc/stat inside the guest)")
    print(f"  machined: {med('machined %', 1):.2f} % of the vCPU ({med('machined net %', 1):.2f} % without one "
          f"round of reads, which costs machined {med('read round s', 1) * 1000:.0f} ms); target <= 3 %")
    print(f"  machined voluntary context switches (wakeups): {med('wakeups/s', 1):.1f}/s")
    print(f"  guest idle (whole VM): {med('guest idle %', 1):.1f} %")
    print(conditions("after"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
