"""The CI VM lifecycle test (marked ``vm``, not ``slow``: about 2 minutes under TCG), all
through ``kosctl`` and the API, on one QEMU node booted from the disk image:

1. ``kosctl cluster create --provisioner qemu``: the VM boots to the maintenance API, gets its
   config over gRPC, etcd is bootstrapped, the health checks pass;
2. ``kosctl upgrade --image http://<gateway>:8099/v2.sqsh#sha256=...`` (the cluster's image
   server): the node writes BOOT-B, reboots into it, confirms it; STATE survives (same config,
   same etcd member);
3. ``kosctl rollback --wait``: back to BOOT-A (the previous good slot);
4. ``kosctl upgrade`` to a deliberately broken image (its /sbin/init exits): BOOT-B gets its
   one try, the kernel panics and reboots, the initramfs rolls back to BOOT-A, which comes up
   again; ``kosctl rollback`` is then refused (BOOT-B never ran a confirmed system);
5. ``kosctl cluster destroy`` removes everything.

The 3-node cluster (``test_cluster.py``), disk-level upgrade variants (``test_upgrade.py``)
and build reproducibility stay in the slow tier (``KOS_SLOW=1``)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kos.platform.image import install, meta
from kos.platform.provision.namespaces import NodeState
from kos.platform.provision.network import netns_exists
from kos.platform.provision.qemu import QemuProvisioner, VMSpec
from tests.vm.test_upgrade import BROKEN_INIT, variant

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.timeout(1500)]


def kosctl(tmp_path: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "--kosconfig", str(tmp_path / "kosconfig"),
                           *args], capture_output=True, text=True, timeout=timeout)


def wait_after(prov: QemuProvisioner, node: NodeState, mark: int, pattern: str, timeout: float) -> int:
    """Wait for ``pattern`` on the console after offset ``mark``; the offset after it."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(prov.console(node), mark)
        if m:
            return m.end()
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not on the console within {timeout:.0f} s; last lines:\n"
                                 f"{prov.console(node)[-2000:]}")
        time.sleep(0.3)


def retry(tmp_path: Path, *args: str, ok: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Repeat a kosctl call until it succeeds with ``ok`` in its output (services restart
    after a reboot)."""
    deadline = time.monotonic() + timeout
    while True:
        out = kosctl(tmp_path, *args, timeout=60)
        if (out.returncode == 0 and ok in out.stdout) or time.monotonic() > deadline:
            return out
        time.sleep(2)


def test_vm_create_upgrade_rollback_broken_upgrade(image: Path, tmp_path: Path) -> None:
    roots = ["--state-root", str(tmp_path / "clusters")]
    name = "vml"
    t0 = time.monotonic()
    # node network outside the default pod (10.244.0.0/16) and service (10.96.0.0/12) subnets:
    # addresses in those are not node addresses (never in certificate SANs)
    created = kosctl(tmp_path, "cluster", "create", "--provisioner", "qemu", "--name", name, "--controlplanes", "1",
                     "--workers", "0", "--cidr", "10.198.0.0/24", "--image-dir", str(image), "--wait-timeout", "600",
                     *roots)
    prov = QemuProvisioner(VMSpec(image), tmp_path / "clusters")
    times: dict[str, float] = {}
    try:
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        assert f"cluster {name!r} is up" in created.stdout
        times["create"] = time.monotonic() - t0
        state = prov.load(name)
        node = state.nodes[0]
        disk = str(Path(node.dir) / "disk.raw")
        assert "booting slot A" in prov.console(node)
        ctx = ["--context", name, "-n", node.ip]

        # 2. a good upgrade over the API
        t = time.monotonic()
        v2 = variant(image, tmp_path, "v2", version="0.1.0+ci")
        digest = hashlib.sha256(v2.read_bytes()).hexdigest()
        shutil.copyfile(v2, Path(state.dir) / "images" / "v2.sqsh")
        mark = len(prov.console(node))
        up = kosctl(tmp_path, *ctx, "upgrade", "--image", f"{prov.image_url(state, 'v2.sqsh')}#sha256={digest}",
                    timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        mark = wait_after(prov, node, mark, r"kos 0\.1\.0\+ci booted slot B", 400)
        wait_after(prov, node, mark, r"boot confirmed, fallback slot dropped", 300)
        assert install.status(disk) == meta.BootState("B")
        members = retry(tmp_path, *ctx, "etcd", "members", ok="cp-1")
        assert members.returncode == 0 and "cp-1" in members.stdout, members.stdout + members.stderr
        times["upgrade"] = time.monotonic() - t

        # 3. manual rollback to the previous good slot
        t = time.monotonic()
        mark = len(prov.console(node))
        back = kosctl(tmp_path, *ctx, "rollback", "--wait", "--timeout", "400", timeout=500)
        assert back.returncode == 0, back.stdout + back.stderr
        assert f"{node.ip}: rolling back from slot B to slot A" in back.stdout
        assert f"{node.ip}: back (stage running)" in back.stdout
        wait_after(prov, node, mark, r"booting slot A(.|\n)*booted slot A", 60)
        assert "0.1.0+ci" not in prov.console(node)[mark:]
        assert install.status(disk) == meta.BootState("A")
        times["rollback"] = time.monotonic() - t

        # 4. an upgrade to a broken image rolls back by itself
        t = time.monotonic()
        broken = variant(image, tmp_path, "broken", init=BROKEN_INIT)
        shutil.copyfile(broken, Path(state.dir) / "images" / "broken.sqsh")
        mark = len(prov.console(node))
        up = kosctl(tmp_path, *ctx, "upgrade", "--image", prov.image_url(state, "broken.sqsh"), timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        m = wait_after(prov, node, mark, r"booting slot B", 300)
        m = wait_after(prov, node, m, r"deliberately broken image", 300)
        wait_after(prov, node, m, r"booting slot A(.|\n)*booted slot A(.|\n)*API up at", 400)
        assert install.status(disk) == meta.BootState("A")
        members = retry(tmp_path, *ctx, "etcd", "members", ok="cp-1")
        assert members.returncode == 0 and "cp-1" in members.stdout, members.stdout + members.stderr
        refused = kosctl(tmp_path, *ctx, "rollback", timeout=60)
        assert refused.returncode != 0
        assert "no previous good slot" in refused.stderr and "BOOT-B never ran a confirmed system" in refused.stderr
        assert install.status(disk) == meta.BootState("A")
        times["broken"] = time.monotonic() - t
    finally:
        destroyed = kosctl(tmp_path, "cluster", "destroy", "--provisioner", "qemu", "--name", name, *roots)
        if prov.exists(name):
            prov.destroy(name)
        sys.stderr.write(f"vm lifecycle times (s): { {k: round(v, 1) for k, v in times.items()} }\n")
    assert destroyed.returncode == 0, destroyed.stderr
    assert not netns_exists(f"kos-{name}")
    assert not (tmp_path / "clusters" / name).exists()
