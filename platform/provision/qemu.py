"""The QEMU provisioner: a local cluster whose nodes are virtual machines booting the kos
image (``rootfs-build/build`` outputs: vmlinux, initramfs.zst, rootfs.sqsh).

KVM is not assumed: QEMU runs under TCG with ``-cpu max`` and boots the uncompressed
``vmlinux`` through PVH. Each VM gets its own raw system disk with the kos layout
(``kos.platform.image.layout``: the rootfs in BOOT-A, META, STATE and EPHEMERAL formatted
xfs as installed) of ``disk`` MiB, a virtio NIC on a tap device enslaved to the cluster bridge inside the cluster's
network namespace (``kos-<cluster>``, see ``network.ClusterNetwork``), its serial console
in ``<node dir>/console.log``, and its address on the kernel command line (``kos.ip=``;
see ``kos.platform.image.boot``). The port forwarder of the namespace provisioner makes each
VM's API reachable on a host loopback port, and a small SNTP server (``sntp``) answers on the
gateway address (point ``machine.time.servers`` at it: ``kosctl cluster create`` does), and an
HTTP server publishes ``<cluster dir>/images/`` on ``<gateway>:8099`` for upgrades
(``kosctl upgrade --image http://<gateway>:8099/<file>``).

The interface mirrors ``NamespaceProvisioner`` (``create(name, nodes, cidr=)``, ``destroy``,
``load``, ``exists``, ``names``) and its state classes, so ``kosctl cluster`` drives either;
``NodeRequest.command``/``env`` do not apply to VMs and are ignored. Clusters live under
``~/.kos/qemu-clusters`` (a namespace cluster of the same name is a different thing).
A node may also get its machine config through QEMU's fw_cfg (``configs``), which the
``qemu`` platform reads at boot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kos.platform.image import layout
from kos.platform.provision.namespaces import (
    ClusterDirectory,
    ClusterState,
    NodeRequest,
    NodeState,
    ProvisionError,
    pid_alive,
    validate_name,
)
from kos.platform.provision.network import ClusterNetwork, NetworkError, netns_exists
from kos.platform.provision.sweep import cluster_pids, kill_all

DEFAULT_STATE_ROOT = Path.home() / ".kos" / "qemu-clusters"
MiB = 1 << 20
QEMU = "qemu-system-x86_64"
IMAGE_FILES = ("vmlinux", "initramfs.zst", "rootfs.sqsh")
IMAGE_PORT = 8099


@dataclass(frozen=True)
class VMSpec:
    """The machine every node gets."""

    image_dir: Path
    cpus: int = 1
    memory: int = 1024  # MiB
    disk: int = 2048  # MiB
    extra_cmdline: str = ""

    def validate(self) -> None:
        if self.cpus < 1 or self.cpus > 16:
            raise ProvisionError(f"--cpus {self.cpus}: expected 1 to 16")
        if self.memory < 512:
            raise ProvisionError(f"--memory {self.memory}: expected at least 512 (MiB)")
        try:
            layout.plan(self.disk * MiB)
        except ValueError as exc:
            raise ProvisionError(f"--disk {self.disk}: {exc}") from None
        missing = [f for f in IMAGE_FILES if not (self.image_dir / f).is_file()]
        if missing:
            raise ProvisionError(f"image directory {self.image_dir}: missing {', '.join(missing)} "
                                 "(build it with rootfs-build/build)")
        if shutil.which(QEMU) is None:
            raise ProvisionError(f"{QEMU} not found (apt-get install qemu-system-x86)")


def mac_address(cluster: str, node: str) -> str:
    h = hashlib.sha256(f"{cluster}/{node}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in h[:3])


def kernel_cmdline(node: NodeState, gateway: str, extra: str = "") -> str:
    return " ".join(filter(None, [
        "console=ttyS0", "panic=3", "quiet", f"kos.ip={node.address}", f"kos.gw={gateway}",
        f"kos.hostname={node.name}", extra,
    ]))


def qemu_command(spec: VMSpec, node: NodeState, tap: str, gateway: str, cluster: str,
                 config: Path | None = None) -> list[str]:
    ndir = Path(node.dir)
    cmd = [
        QEMU, "-name", f"kos-{cluster}-{node.name}", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
        "-smp", str(spec.cpus), "-m", str(spec.memory), "-nodefaults", "-no-user-config", "-display", "none",
        "-serial", f"file:{ndir / 'console.log'}", "-pidfile", str(ndir / "qemu.pid"),
        "-kernel", str(spec.image_dir / "vmlinux"), "-initrd", str(spec.image_dir / "initramfs.zst"),
        "-append", kernel_cmdline(node, gateway, spec.extra_cmdline),
        "-drive", f"file={ndir / 'disk.raw'},format=raw,if=virtio,cache=unsafe,discard=unmap",
        "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={mac_address(cluster, node.name)}",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip
    if config is not None:
        cmd += ["-fw_cfg", f"name=opt/kos.config,file={config}"]
    return cmd


def vm_pid(node: NodeState) -> int | None:
    """The QEMU process of a node, when it runs."""
    return node.pid if pid_alive(node.pid) and _is_qemu(node.pid) else None


def _is_qemu(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip().startswith("qemu-system")
    except OSError:
        return False


class QemuProvisioner(ClusterDirectory):
    def __init__(self, spec: VMSpec, state_root: Path | None = None) -> None:
        self.spec = spec
        self.state_root = state_root or DEFAULT_STATE_ROOT

    # -- create -----------------------------------------------------------------------------
    def create(self, name: str, nodes: list[NodeRequest], *, cidr: str = "10.5.0.0/24",
               configs: dict[str, Path] | None = None) -> ClusterState:
        validate_name("cluster", name)
        if not nodes:
            raise ProvisionError("a cluster needs at least one node")
        seen: set[str] = set()
        for n in nodes:
            validate_name("node", n.name)
            if n.name in seen:
                raise ProvisionError(f"node name {n.name!r} is used twice")
            seen.add(n.name)
        for node_name, path in (configs or {}).items():
            if node_name not in seen:
                raise ProvisionError(f"config for {node_name!r}: no such node")
            if not path.is_file():
                raise ProvisionError(f"config for {node_name}: {path} is not a file")
        self.spec.validate()
        if os.geteuid() != 0:
            raise ProvisionError("QEMU clusters need root (network namespace, tap devices)")
        if self.exists(name):
            raise ProvisionError(f"cluster {name!r} already exists; destroy it first")
        network = ClusterNetwork(name, cidr)
        if netns_exists(network.netns):
            raise ProvisionError(f"network namespace {network.netns} already exists; destroy that cluster first")
        cdir = self.cluster_dir(name)
        cdir.mkdir(parents=True, exist_ok=True)
        state = ClusterState(name=name, cidr=cidr, dir=str(cdir), gateway=str(network.gateway))
        state.save()
        (cdir / "vm.json").write_text(json.dumps({"image_dir": str(self.spec.image_dir), "cpus": self.spec.cpus,
                                                  "memory": self.spec.memory, "disk": self.spec.disk}, indent=2))
        try:
            network.create()
            self._start_sntp(state)
            self._start_image_server(state)
            for i, req in enumerate(nodes):
                ndir = cdir / req.name
                ndir.mkdir(parents=True, exist_ok=True)
                address = f"{network.address(i)}/{network.network.prefixlen}"
                node = NodeState(name=req.name, role=req.role, address=address, netns=network.netns, dir=str(ndir),
                                 api_port=req.api_port)
                layout.write_image(ndir / "disk.raw", self.spec.image_dir / "rootfs.sqsh", self.spec.disk * MiB,
                                   seed=f"{name}/{req.name}", format_volumes=True)
                tap = f"tap{i}"
                _ip("-n", network.netns, "tuntap", "add", tap, "mode", "tap")
                _ip("-n", network.netns, "link", "set", tap, "master", "kos0", "up")
                node.pid = self._start_vm(state, node, tap, (configs or {}).get(req.name))
                state.nodes.append(node)
                state.save()
            self._start_forwarder(state)
            state.save()
        except BaseException:
            self.destroy(name)
            raise
        return state

    def _start_vm(self, state: ClusterState, node: NodeState, tap: str, config: Path | None) -> int:
        ndir = Path(node.dir)
        cmd = ["nsenter", f"--net=/run/netns/kos-{state.name}",
               *qemu_command(self.spec, node, tap, state.gateway, state.name, config)]
        (ndir / "qemu.json").write_text(json.dumps({"tap": tap, "config": str(config) if config else "",
                                                    "command": cmd}, indent=2))
        if (ndir / "console.log").exists():  # QEMU truncates it: keep the previous run's
            (ndir / "console.log").replace(ndir / "console.log.1")
        (ndir / "qemu.pid").unlink(missing_ok=True)
        log = open(ndir / "qemu.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while not (ndir / "qemu.pid").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (ndir / "qemu.log").read_text(errors="replace")[-2000:]
                raise ProvisionError(f"QEMU for {node.name} did not start: {tail.strip()}")
            time.sleep(0.02)
        return proc.pid  # nsenter execs qemu: the same process

    def start_vm(self, state: ClusterState, node: NodeState) -> None:
        """Start a stopped VM again with the same disk, tap and config (the previous
        console is kept as console.log.1)."""
        if pid_alive(node.pid) and _is_qemu(node.pid):
            raise ProvisionError(f"VM {node.name} is already running (pid {node.pid})")
        recorded = json.loads((Path(node.dir) / "qemu.json").read_text())
        config = Path(recorded["config"]) if recorded.get("config") else None
        node.pid = self._start_vm(state, node, recorded["tap"], config)
        state.save()

    def _start_sntp(self, state: ClusterState) -> None:
        """The cluster's time server on the gateway address (VMs have no internet)."""
        cdir = Path(state.dir)
        log = open(cdir / "sntp.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen([sys.executable, "-m", "kos.platform.provision.sntp", "--netns",
                                     f"kos-{state.name}", "--bind", state.gateway], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        (cdir / "sntp.pid").write_text(str(proc.pid))

    def _start_image_server(self, state: ClusterState) -> None:
        """An HTTP server for ``<cluster dir>/images/`` on the gateway: nodes upgrade from
        ``http://<gateway>:8099/<file>`` (the cluster's own rootfs is there as rootfs.sqsh)."""
        cdir = Path(state.dir)
        images = cdir / "images"
        images.mkdir(exist_ok=True)
        try:
            os.link(self.spec.image_dir / "rootfs.sqsh", images / "rootfs.sqsh")
        except OSError:
            shutil.copyfile(self.spec.image_dir / "rootfs.sqsh", images / "rootfs.sqsh")
        log = open(cdir / "images.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(["nsenter", f"--net=/run/netns/kos-{state.name}", sys.executable, "-m",
                                     "http.server", "--bind", state.gateway, str(IMAGE_PORT), "--directory",
                                     str(images)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()
        (cdir / "images.pid").write_text(str(proc.pid))

    @staticmethod
    def image_url(state: ClusterState, name: str = "rootfs.sqsh") -> str:
        """Where the nodes of ``state`` fetch ``<cluster dir>/images/<name>``."""
        return f"http://{state.gateway}:{IMAGE_PORT}/{name}"

    def _start_forwarder(self, state: ClusterState) -> None:
        from kos.platform.provision.namespaces import NamespaceProvisioner

        NamespaceProvisioner(self.state_root)._start_forwarder(state)

    # -- console ------------------------------------------------------------------------------
    @staticmethod
    def console(node: NodeState) -> str:
        try:
            return (Path(node.dir) / "console.log").read_text(errors="replace")
        except OSError:
            return ""

    def wait_console(self, node: NodeState, pattern: str, timeout: float) -> re.Match[str]:
        """Poll the node's serial console until ``pattern`` (a regex) appears."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.console(node))
            if m:
                return m
            if not pid_alive(node.pid) or not _is_qemu(node.pid):
                raise ProvisionError(f"VM {node.name} stopped before {pattern!r} appeared on its console; "
                                     f"last lines:\n{self.console(node)[-1500:]}")
            if time.monotonic() > deadline:
                raise ProvisionError(f"VM {node.name}: {pattern!r} not on the console within {timeout:.0f} s; "
                                     f"last lines:\n{self.console(node)[-1500:]}")
            time.sleep(0.2)

    # -- destroy ------------------------------------------------------------------------------
    def stop_vm(self, node: NodeState, *, timeout: float = 10.0) -> None:
        if not (pid_alive(node.pid) and _is_qemu(node.pid)):
            return
        os.kill(node.pid, signal.SIGTERM)  # QEMU exits at once; the guest just stops
        deadline = time.monotonic() + timeout
        while pid_alive(node.pid) and time.monotonic() < deadline:
            _reap(node.pid)
            time.sleep(0.05)
        if pid_alive(node.pid):
            os.kill(node.pid, signal.SIGKILL)
        _reap(node.pid)

    def destroy(self, name: str) -> None:
        """Stop the VMs and the forwarder, delete the namespace (taps and bridge with it) and
        the cluster directory (disks, consoles)."""
        cdir = self.cluster_dir(name)
        state = ClusterState.load(cdir) if (cdir / "cluster.json").exists() else None
        errors: list[str] = []
        if state is not None:
            for node in state.nodes:
                try:
                    self.stop_vm(node)
                except OSError as exc:
                    errors.append(f"stopping {node.name}: {exc}")
            helpers = [(state.forwarder_pid, b"kos.platform.provision.forward")]
            for pidfile, module in (("sntp.pid", b"kos.platform.provision.sntp"), ("images.pid", b"http.server")):
                try:
                    helpers.append((int((cdir / pidfile).read_text()), module))
                except (OSError, ValueError):
                    pass
            for fpid, module in helpers:
                if not (fpid and pid_alive(fpid)):
                    continue
                try:
                    cmdline = Path(f"/proc/{fpid}/cmdline").read_bytes()
                except OSError:
                    cmdline = b""
                if module in cmdline:
                    os.kill(fpid, signal.SIGTERM)
                    deadline = time.monotonic() + 5
                    while pid_alive(fpid) and time.monotonic() < deadline:
                        _reap(fpid)
                        time.sleep(0.05)
                    _reap(fpid)
        # whatever is left, found by what the kernel knows (see sweep)
        survivors = kill_all(lambda: cluster_pids(cdir, netns=[f"kos-{name}"],
                                                  markers=[f"kos-{name}", f"--net=/run/netns/kos-{name}"]))
        if survivors:
            errors.append(f"processes survived SIGKILL: {sorted(survivors)}")
        try:
            ClusterNetwork(name, state.cidr if state else "10.5.0.0/24").destroy()
        except NetworkError as exc:
            errors.append(str(exc))
        if cdir.exists():
            shutil.rmtree(cdir, ignore_errors=True)
        if errors:
            raise ProvisionError("; ".join(errors))


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ProvisionError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
