"""Benchmark: the kos image build and VM boot under TCG.

``python bench/image_build.py [--boots N] [--skip-full]`` (root; needs the .ci/setup
packages) prints:

* full build time: every layer rebuilt, twice in separate caches, and whether both gave the
  same initramfs and rootfs bytes (the .deb downloads are reused from the main cache, so
  this is the build work, not the network);
* cached rebuild time after a Python-only change (a comment appended to a copy of one kos
  module is the change), and the no-change rebuild time;
* sizes of vmlinux, initramfs.zst, rootfs.sqsh and the disk image (allocated bytes);
* N boots of one VM (median, min, max): guest uptime when the initramfs hands over
  (kernel + initramfs share), when /sbin/init (Python) runs, when the API accepts
  connections, and the host wall time from QEMU start to API up.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20


def build(cache: Path, out: Path, repo: Path = REPO) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    subprocess.run([str(repo / "rootfs-build" / "build"), "--cache", str(cache), "--out", str(out)], check=True,
                   capture_output=True)
    summary: dict[str, object] = json.loads((out / "build.json").read_text())
    return time.monotonic() - t0, summary


def boot(image: Path, state_root: Path, index: int) -> dict[str, float]:
    from kos.platform.provision.namespaces import NodeRequest
    from kos.platform.provision.qemu import QemuProvisioner, VMSpec

    prov = QemuProvisioner(VMSpec(image, cpus=1, memory=1024, disk=2048), state_root)
    name = f"bench{index}"
    t0 = time.monotonic()
    state = prov.create(name, [NodeRequest("n1", "controlplane", [])], cidr="10.95.0.0/24")
    try:
        node = state.nodes[0]
        api = prov.wait_console(node, r"API up at ([\d.]+) s uptime", 300)
        wall = time.monotonic() - t0
        console = prov.console(node)
        handover = re.search(r"booting slot \w from \S+ at ([\d.]+) s uptime", console)
        init = re.search(r"init at ([\d.]+) s uptime", console)
        return {
            "initramfs handover (s uptime)": float(handover.group(1)) if handover else -1.0,
            "/sbin/init Python start (s uptime)": float(init.group(1)) if init else -1.0,
            "API up (s uptime)": float(api.group(1)),
            "QEMU start to API up (s wall)": wall,
        }
    finally:
        prov.destroy(name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--boots", type=int, default=3)
    p.add_argument("--skip-full", action="store_true", help="skip the full (uncached) build")
    args = p.parse_args()
    main_cache = REPO / "build" / "kos-image"
    with tempfile.TemporaryDirectory(prefix="kos-bench-image-") as tmp:
        t = Path(tmp)
        print("== build")
        # builds use a snapshot of the checkout: others may be editing the working tree
        src = t / "src"
        skip = shutil.ignore_patterns(".git", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache",
                                      ".pytest_cache")
        shutil.copytree(REPO, src, ignore=lambda d, names: skip(d, names) | ({"build"} if d == str(REPO) else set()))
        if not args.skip_full:
            cache = t / "cache"
            (cache / "debs").mkdir(parents=True)
            for deb in (main_cache / "debs").glob("*.deb"):
                shutil.copy2(deb, cache / "debs" / deb.name)
            secs, first = build(cache, t / "full-out", repo=src)
            print(f"full build (layers from scratch, .debs cached): {secs:6.1f} s")
            cache2 = t / "cache2"
            shutil.copytree(cache / "debs", cache2 / "debs")
            _, second = build(cache2, t / "full-out2", repo=src)
            same = first["sha256"] == second["sha256"]
            print(f"second build from scratch gives the same bytes:  {'yes' if same else 'NO'} {second['sha256']}")
            shutil.rmtree(cache2)
        build(main_cache, t / "warm-out", repo=src)
        secs, summary = build(main_cache, t / "warm-out", repo=src)
        print(f"rebuild, nothing changed:                     {secs:6.1f} s")
        # a Python-only change: the snapshot with one module touched
        with open(src / "machined" / "main.py", "a") as f:
            f.write("\n# bench: a Python-only change\n")
        secs, changed = build(main_cache, t / "py-out", repo=src)
        print(f"rebuild after a Python-only change:           {secs:6.1f} s  (steps: {changed['steps']})")
        print("== sizes")
        sizes = summary["sizes"]
        assert isinstance(sizes, dict)
        for k, v in sizes.items():
            print(f"{k:<24} {v / MiB:8.1f} MiB")
        print(f"== VM boot under TCG (-cpu max, 1 vCPU, 1 GiB), {args.boots} boots: median [min .. max]")
        runs = [boot(t / "warm-out", t / "clusters", i) for i in range(args.boots)]
        for key in runs[0]:
            vals = [r[key] for r in runs]
            print(f"{key:<38} {statistics.median(vals):6.2f}  [{min(vals):.2f} .. {max(vals):.2f}]")
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        api = med["API up (s uptime)"]
        print(f"shares of boot-to-API: kernel+initramfs {med['initramfs handover (s uptime)'] / api:.0%}, "
              f"Python init + machined to API {(api - med['/sbin/init Python start (s uptime)']) / api:.0%}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
