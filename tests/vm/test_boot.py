"""The CI VM test (marked ``vm``, not ``slow``): build the image (cached), check its rootfs,
boot one QEMU VM from its disk, reach the maintenance API from the host through the
forwarder, then destroy everything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from kos.platform.image import install, meta
from kos.platform.provision.namespaces import NodeRequest, pid_alive
from kos.platform.provision.network import netns_exists
from kos.platform.provision.qemu import QemuProvisioner
from tests.support.speed import scaled

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.timeout(600)]


def test_rootfs_content(image: Path) -> None:
    listing = subprocess.run(["unsquashfs", "-lls", "-d", "", str(image / "rootfs.sqsh")], capture_output=True,
                             text=True, check=True).stdout
    paths = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in listing.splitlines()
             if line[:1] in "-dlcb"}
    for shell in ("sh", "bash", "dash", "busybox"):
        for d in ("/usr/bin", "/usr/sbin"):
            assert f"{d}/{shell}" not in paths
    for binary in ("/usr/bin/python3.11", "/usr/bin/etcd", "/usr/bin/containerd", "/usr/sbin/runc", "/usr/sbin/init",
                   "/etc/ssl/certs/ca-certificates.crt", "/usr/lib/kos/version"):
        assert any(p == binary or p.startswith(binary + " ") for p in paths), binary
    assert paths["/sbin"].endswith("/sbin -> usr/sbin")
    assert all(" root/root " in line and " 1970-01-01 00:00 " in line for line in paths.values())
    assert "/usr/lib/python3/dist-packages/kos/machined/main.cpython-311.pyc" not in paths  # pyc live in __pycache__
    assert "/usr/lib/python3/dist-packages/kos/machined/__pycache__/main.cpython-311.pyc" in paths
    # read-only: squashfs has no write support at all; the disk image boots slot A
    assert install.status(str(image / "disk.raw")) == meta.BootState("A")


def test_vm_boots_to_the_maintenance_api(provisioner: QemuProvisioner) -> None:
    from kos.apis.client import Connection
    from kos.apis.gen.kos import machine as pb

    state = provisioner.create("ci", [NodeRequest("n1", "controlplane", [])], cidr="10.93.0.0/24")
    node = state.nodes[0]
    # waits follow this machine's speed (TCG on a busy or slower machine), the checks do not
    assert provisioner.wait_console(node, r"booting slot A from /dev/vda\d", scaled(120))
    m = provisioner.wait_console(node, r"API up at ([\d.]+) s uptime", scaled(240))
    assert float(m.group(1)) > 0

    async def version() -> pb.VersionResponse:
        async with Connection(f"127.0.0.1:{node.host_port}", insecure=True, timeout=scaled(20)) as conn:
            return pb.VersionResponse().parse(await conn.unary("/kos.machine.MachineService/Version", b""))

    v = anyio.run(version)
    assert v.maintenance is True
    assert v.version.tag == (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text().split(
        'version = "', 1)[1].split('"', 1)[0]
    assert "kos: eth0 10.93.0.2/24 via 10.93.0.1" in provisioner.console(node)

    helpers = [p for p in ("sntp.pid", "images.pid") if (Path(state.dir) / p).exists()]
    assert helpers == ["sntp.pid", "images.pid"]
    provisioner.destroy("ci")
    assert not netns_exists("kos-ci")
    leftovers = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if state.dir.encode() in cmd or b"kos-ci" in cmd:
            leftovers.append(cmd.replace(b"\0", b" ").decode(errors="replace"))
    assert leftovers == []
    assert not pid_alive(node.pid)
    assert not Path(state.dir).exists()
