"""Start-up a person feels (issue 17): ``python -m bench.kosctl_speed [--runs 7] [--context C
--kosconfig F]``.

Each round times, as separate processes of the same interpreter, interleaved so load drifts
hit them alike:

* ``python3 -c pass`` (the baseline every other figure is a ratio of);
* ``kosctl --help`` (target <= 1.3x);
* ``kosctl get members`` against a running node (target <= 3x): the node is a 1-control-plane
  namespace cluster created here (Kubernetes off), or the ``--context`` of ``--kosconfig``;
  once with the resource-definition cache warm (what a person typing commands gets) and once
  with an empty cache (``XDG_CACHE_HOME``: the node lists every definition);
* the floor of ``kosctl get``: ``bench/clientfloor.py``, python + ssl + socket reading the
  kosconfig's current context, TLS 1.3 with the client certificate and the HTTP/2 preface
  answered by the node's SETTINGS (no kos module, no call);
* the baseline, ``kosctl get members`` and that floor again with ``python -S`` (no ``site``
  and its ``.pth`` hooks, which load ~40 modules into every start in some environments);
* machined start -> API ready (target <= 5x): ``machined --maintenance --platform process``
  until its port accepts a TCP connection (listening) and until a ``Version`` call over TLS is
  answered (answered: the figure that counts), ``bench/apiready.py``;
* the floor of that answer: asyncio + ssl + grpclib's server answering ``Version`` with a
  ready-made certificate (no kos, no anyio), what Python can reach on this machine.

kosctl runs as its console script does (``from kos.apis.kosctl.main import main``).
``--before REV`` also times kosctl and machined of git revision REV (``git archive`` into a
temporary ``kos`` package on ``PYTHONPATH``) in the same rounds, against the same node. Medians,
the load average and a calibration loop are printed; ``--importtime`` adds the largest
``-X importtime`` entries of ``kosctl get members``. Needs root for the cluster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.apiready import FLOOR, api_ready, floor_files, free_port
from bench.localnodes import LocalCluster, conditions

KOSCTL = "import sys; from kos.apis.kosctl.main import main; sys.exit(main())"
CLIENT_FLOOR = "floor: python+ssl+TLS handshake (client)"
"""bench/clientfloor.py: the least any mutual-TLS client pays before its first call (no kos)."""
NO_SITE = ("python3 -S -c pass (no site hooks)", "kosctl get members, -S", "floor (client), -S")
"""The baseline, kosctl get and the floor without ``site`` (``-S``; kos and its dependencies on
PYTHONPATH): .pth hooks of an environment (here an editable install's finder and a certifi
patch, ~30 ms) load modules into every start, ``python3 -c pass`` included."""
NO_SITE_API = ("machined start -> API answered, -S", "floor: asyncio+ssl+grpclib answering, -S")
"""machined's first answer and its floor, also against a bare interpreter (issue 17)."""


def no_site(tmp: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment for ``python -S``: a ``kos`` symlink to this tree and site-packages."""
    import site

    root = tmp / "nosite"
    if not root.exists():
        root.mkdir()
        (root / "kos").symlink_to(Path(__file__).resolve().parents[1])
    return dict(env, PYTHONPATH=os.pathsep.join([str(root), *site.getsitepackages()]))


def compile_tree(root: Path) -> None:
    """Byte-compile every kos package of a tree, as the node image and an installed package have
    it (a warm-up run compiles only what it imports: machined stopped at its first answer
    leaves most of the node uncompiled)."""
    import compileall

    for package in ("apis", "controllers", "machined", "platform", "resources"):
        compileall.compile_dir(str(root / package), quiet=1)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 2):  # --help without a command exits 0
        raise SystemExit(f"{cmd[-3:]} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return elapsed


def machined_to_api(tmp: Path, env: dict[str, str] | None = None, *flags: str) -> tuple[float, float]:
    """(listening, answered) seconds of a maintenance-mode machined (``bench.apiready``)."""
    state = Path(tempfile.mkdtemp(dir=tmp))
    port = free_port()
    return api_ready([sys.executable, *flags, "-m", "kos.machined.main", "--state-dir", str(state), "--listen",
                      f"127.0.0.1:{port}", "--maintenance", "--platform", "process"], port, state / "log", env)


def floor_to_api(tmp: Path, crt: Path, key: Path, env: dict[str, str] | None = None, *flags: str) -> float:
    port = free_port()
    return api_ready([sys.executable, *flags, "-c", FLOOR, str(port), str(crt), str(key)], port, tmp / "floor.log",
                     env)[1]


def importtime(env: dict[str, str], top: int = 15) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", KOSCTL, "get", "members"], env=env,
                          capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us, cum_us, name = (x.strip() for x in line[len("import time:"):].split("|"))
            if self_us.isdigit():
                rows.append((int(cum_us), int(self_us), name))
    print(f"  -X importtime of 'kosctl get members': {len(rows)} modules; largest cumulative:")
    for cum, self_us, name in sorted(rows, reverse=True)[:top]:
        print(f"    {cum / 1000:7.1f} ms (self {self_us / 1000:5.1f})  {name}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--kosconfig", help="use this kosconfig's node instead of creating a cluster")
    p.add_argument("--context")
    p.add_argument("--importtime", action="store_true")
    p.add_argument("--before", metavar="REV", help="also time kosctl and machined of this git revision")
    args = p.parse_args()
    print(conditions("before"), flush=True)
    with tempfile.TemporaryDirectory(prefix="kos-speed-") as tmp_s:
        tmp = Path(tmp_s)
        cluster = None
        if args.kosconfig:
            env = dict(os.environ, KOSCONFIG=args.kosconfig)
        else:
            (tmp / "no-k8s").mkdir()
            os.environ["KOS_K8S_DIR"] = str(tmp / "no-k8s")
            cluster = LocalCluster(tmp, 1, 0, "k").__enter__()
            env = cluster.env
        # byte-code cached as an installed package and the node image have it (this environment
        # sets PYTHONDONTWRITEBYTECODE: without a cache every start compiles its kos modules);
        # the warm-up runs below write the cache (``__pycache__``, ignored by git)
        env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        compile_tree(Path(__file__).resolve().parents[1])
        get = [sys.executable, "-c", KOSCTL, *(["--context", args.context] if args.context else []), "get", "members"]
        try:
            timed(get, env)  # warm the page cache and byte-code
            old: dict[str, str] | None = None
            if args.before:
                (tmp / "before" / "kos").mkdir(parents=True)
                archive = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "archive",
                                          args.before], capture_output=True, check=True).stdout
                subprocess.run(["tar", "-x", "-C", str(tmp / "before" / "kos")], input=archive, check=True)
                old = dict(env, PYTHONPATH=str(tmp / "before"))
                compile_tree(tmp / "before" / "kos")
                timed(get, old)
            names = ["python3 -c pass", "kosctl --help", "kosctl get members", "kosctl get members (no RD cache)",
                     "machined start -> API answered", "machined start -> API listening",
                     "floor: asyncio+ssl+grpclib answering", CLIENT_FLOOR, *NO_SITE, *NO_SITE_API]
            targets = dict(zip(names[1:5], (1.3, 3.0, 3.0, 5.0), strict=True))
            if old is not None:
                names += [f"{n} @{args.before}" for n in names[1:6] if "no RD cache" not in n]
            crt, key = floor_files(tmp)
            for e in [env] + ([old] if old is not None else []):  # warm-up: page cache and byte-code
                machined_to_api(tmp, e)
            floor_to_api(tmp, crt, key)
            machined_to_api(tmp, no_site(tmp, env), "-S")
            figures: dict[str, list[float]] = {n: [] for n in names}
            for _ in range(args.runs):
                figures["python3 -c pass"].append(timed([sys.executable, "-c", "pass"], env))
                for suffix, e in [("", env)] + ([(f" @{args.before}", old)] if old is not None else []):
                    assert e is not None
                    figures["kosctl --help" + suffix].append(timed([sys.executable, "-c", KOSCTL, "--help"], e))
                    figures["kosctl get members" + suffix].append(timed(get, e))
                    if not suffix:
                        cold = dict(env, XDG_CACHE_HOME=tempfile.mkdtemp(dir=tmp))
                        figures["kosctl get members (no RD cache)"].append(timed(get, cold))
                    listening, answered = machined_to_api(tmp, e)
                    figures["machined start -> API listening" + suffix].append(listening)
                    figures["machined start -> API answered" + suffix].append(answered)
                figures["floor: asyncio+ssl+grpclib answering"].append(floor_to_api(tmp, crt, key))
                # the baseline twice per round (first and last): a burst of load at one place in
                # the round would otherwise tilt every ratio
                figures["python3 -c pass"].append(timed([sys.executable, "-c", "pass"], env))
                floor = [str(Path(__file__).with_name("clientfloor.py")), env.get("KOSCONFIG", "")]
                figures[CLIENT_FLOOR].append(timed([sys.executable, *floor], env))
                bare = no_site(tmp, env)
                for name, cmd in zip(NO_SITE, (["-c", "pass"], get[1:], floor), strict=True):
                    figures[name].append(timed([sys.executable, "-S", *cmd], bare))
                figures[NO_SITE_API[0]].append(machined_to_api(tmp, bare, "-S")[1])
                figures[NO_SITE_API[1]].append(floor_to_api(tmp, crt, key, bare, "-S"))
            base = statistics.median(figures["python3 -c pass"])
            print(f"== medians of {args.runs} interleaved rounds ({sys.executable}; byte-code cached)")
            for name, values in figures.items():
                m = statistics.median(values)
                target = f"target <= {targets[name]}x" if name in targets else "baseline" if m == base else ""
                if name in NO_SITE[1:] or name in NO_SITE_API:
                    target = f"{m / statistics.median(figures[NO_SITE[0]]):5.2f}x of python3 -S -c pass"
                print(f"  {name:<44} {1000 * m:8.1f} ms  {m / base:5.2f}x  {target}")
            if args.importtime:
                importtime(env)
        finally:
            if cluster is not None:
                cluster.__exit__()
    print(conditions("after"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
