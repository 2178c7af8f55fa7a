"""The image's ``/sbin/init``: PID-1 set-up on a booted kos image, then ``exec`` machined.

The initramfs has mounted the rootfs slot read-only, moved /dev and mounted /run. This
module mounts /proc, /sys, an overlay making /etc writable (in RAM), /system and /var
(tmpfs until machined's block controllers mount STATE and EPHEMERAL), writes /run/kos/{hostname,hosts,
resolv.conf,machine-id} (the read-only /etc links there), configures the network from the
kernel command line, prints the kos banner on the console, starts the boot confirmer (a
child that marks the slot good in META once the API answers, and reboots a new slot that
does not come up within ``kos.confirm`` seconds so that the initramfs rolls it back) and
execs machined in maintenance mode.

Kernel command line (all optional)::

    kos.ip=10.5.0.2/24   kos.gw=10.5.0.1   kos.hostname=node-1   kos.dns=10.5.0.1
    kos.listen=0.0.0.0:50000   kos.confirm=60 (seconds the API has to come up)

The network set-up here is the stop-gap until machined's network controllers configure the
links from the machine config; it only runs when ``kos.ip`` is given.

Everything this process imports is thrown away by the exec, so it imports little: plain
rtnetlink (``bootnet``) instead of pyroute2, the XFS superblock magic instead of the block
prober, and machined starts from its byte-compiled entry point ``/usr/bin/machined`` (not
``python -m``, which compiles the module from source every boot). The banner line carries
the boot's phases in seconds of uptime (``Python up at``: the interpreter started and
imported this module; ``init at``: mounts and network done, machined is exec'd);
``bench/vm_boot.py`` reads them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import NamedTuple

MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
XFS_MAGIC = b"XFSB"
MACHINED = "/usr/bin/machined"  # the image's entry point (byte-compiled kos.machined.main)


class BootError(ValueError):
    pass


class BootParams(NamedTuple):  # not a dataclass: its import (inspect, ast) was half of this module's
    ip: str = ""  # address/prefix
    gateway: str = ""
    hostname: str = ""
    dns: str = ""
    listen: str = "0.0.0.0:50000"
    confirm_timeout: float = 60.0


def parse_cmdline(text: str) -> BootParams:
    """The kos.* parameters of a kernel command line; BootError names a bad one."""
    vals: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if key.startswith("kos.") and sep:
            vals[key] = value
    ip = vals.get("kos.ip", "")
    if ip:
        try:
            iface = ipaddress.ip_interface(ip)
        except ValueError:
            raise BootError(f"kos.ip={ip}: expected an address with prefix, like 10.5.0.2/24") from None
        if iface.network.prefixlen == iface.max_prefixlen:
            raise BootError(f"kos.ip={ip}: expected an address with prefix, like 10.5.0.2/24")
    for key in ("kos.gw", "kos.dns"):
        if vals.get(key):
            try:
                ipaddress.ip_address(vals[key])
            except ValueError:
                raise BootError(f"{key}={vals[key]}: expected an IP address") from None
    hostname = vals.get("kos.hostname", "")
    if hostname and (len(hostname) > 63 or not all(c.isalnum() or c == "-" for c in hostname)):
        raise BootError(f"kos.hostname={hostname}: expected a DNS label (letters, digits, '-', at most 63)")
    try:
        confirm = float(vals.get("kos.confirm", "60"))
    except ValueError:
        raise BootError(f"kos.confirm={vals['kos.confirm']}: expected seconds") from None
    return BootParams(ip, vals.get("kos.gw", ""), hostname, vals.get("kos.dns", ""),
                      vals.get("kos.listen", "0.0.0.0:50000"), confirm)


def read_boot_info(path: Path = Path("/run/kos-boot")) -> dict[str, str]:
    """KOS_SLOT / KOS_META as the initramfs recorded them."""
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            k, _, v = line.partition("=")
            out[k] = v
    return out


def _mounts() -> None:
    """What machined needs before it starts: /proc and /sys to read the command line; a
    writable /etc (overlayfs: the image's /etc below, a tmpfs layer in /run above, so
    controllers can write resolv.conf, hosts and /etc/kubernetes) and a writable /opt the same
    way (the image's CNI plugins in /opt/cni/bin, where a CNI's DaemonSet adds its own, as on
    Talos); tmpfs on /system (with
    /system/secrets); STATE at /system/state and EPHEMERAL at /var when they were formatted
    on an earlier boot (so machined finds its config, as Talos mounts STATE early). On a
    first boot the block controllers format and mount them once a config selects the disk
    (``machine.install.disk``); until then /var is the image's (read-only) and
    /system/state a directory in RAM. Without a kos system disk /var is a tmpfs.
    machined's own early mounts (/dev/pts, /run, /tmp, cgroups) skip what is mounted."""
    from kos.platform.linux import syscalls

    syscalls.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    syscalls.mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for top in ("etc", "opt"):
        for d in (f"/run/kos/{top}/upper", f"/run/kos/{top}/work"):
            os.makedirs(d, exist_ok=True)
        syscalls.mount("overlay", f"/{top}", "overlay", MS_NOSUID | MS_NODEV,
                       f"lowerdir=/{top},upperdir=/run/kos/{top}/upper,workdir=/run/kos/{top}/work")
    syscalls.mount("tmpfs", "/system", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for d in ("/system/state", "/system/secrets", "/system/run", "/system/etc"):
        os.makedirs(d, mode=0o700, exist_ok=True)
    parts = partitions_by_label()
    state, ephemeral = parts.get("STATE"), parts.get("EPHEMERAL")
    if state and _is_xfs(state):  # formatted on an earlier boot: the config is there
        syscalls.mount(state, "/system/state", "xfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if ephemeral is None:  # not a kos system disk: /var in RAM
        syscalls.mount("tmpfs", "/var", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    elif _is_xfs(ephemeral):
        syscalls.mount(ephemeral, "/var", "xfs", MS_NOSUID | MS_NODEV)


def partitions_by_label(sys_block: Path = Path("/sys/class/block")) -> dict[str, str]:
    """GPT partition label -> /dev path, from the kernel's uevent files."""
    out: dict[str, str] = {}
    for uevent in sorted(sys_block.glob("*/uevent")):
        fields = dict(line.partition("=")[::2] for line in uevent.read_text().splitlines())
        if fields.get("PARTNAME") and fields.get("DEVNAME"):
            out.setdefault(fields["PARTNAME"], "/dev/" + fields["DEVNAME"])
    return out


def _is_xfs(dev: str) -> bool:
    """Whether ``dev`` holds an XFS filesystem (its superblock magic; the block prober's
    imports would cost the boot more than the check)."""
    try:
        with open(dev, "rb") as f:
            return f.read(4) == XFS_MAGIC
    except OSError:
        return False


def _etc_files(p: BootParams) -> None:
    from kos.platform.linux import syscalls

    run = Path("/run/kos")
    run.mkdir(parents=True, exist_ok=True)
    hostname = p.hostname or "kos-" + os.urandom(3).hex()
    syscalls.sethostname(hostname)
    (run / "hostname").write_text(hostname + "\n")
    ip = p.ip.split("/")[0] if p.ip else "127.0.1.1"
    (run / "hosts").write_text(f"127.0.0.1 localhost\n::1 localhost\n{ip} {hostname}\n")
    (run / "resolv.conf").write_text(f"nameserver {p.dns}\n" if p.dns else "")
    (run / "machine-id").write_text(os.urandom(16).hex() + "\n")


def _network(p: BootParams) -> None:
    """lo up; with ``kos.ip`` the first link (by name) up with that address and the default
    route through ``kos.gw`` (plain rtnetlink: ``kos.platform.image.bootnet``)."""
    from kos.platform.image import bootnet

    with bootnet.Rtnl() as rtnl:
        named = bootnet.links()
        for name, index in named:
            if name == "lo":
                rtnl.link_up(index, name)
        if not p.ip:
            return
        links = [(name, index) for name, index in named if name != "lo"]
        if not links:
            raise BootError("kos.ip given but the machine has no network link")
        name, index = links[0]
        iface = ipaddress.ip_interface(p.ip)
        rtnl.link_up(index, name)
        rtnl.address_add(index, str(iface.ip), iface.network.prefixlen)
        if p.gateway:
            rtnl.default_route(p.gateway)
        print(f"kos: {name} {p.ip}" + (f" via {p.gateway}" if p.gateway else ""), flush=True)


def confirm_boot(meta_dev: str, offset: int = 0) -> bool:
    """Mark the running slot good: drop META's fallback. True if it changed anything."""
    from kos.platform.image import meta  # the confirmer's, after the fork: not on the boot path

    values = meta.read(meta_dev, offset)
    state = meta.BootState.from_meta(values)
    if not state.fallback:
        return False
    out = meta.confirm(state).to_meta(values)
    out[f"good-{state.active.lower()}"] = "1"  # a manual rollback may come back to it
    meta.write(meta_dev, out, offset)
    return True


def _confirmer(p: BootParams, meta_dev: str) -> None:
    """Child process: once the API port accepts connections, say so on the console and
    confirm the boot in META."""
    host, _, port = p.listen.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
    deadline = time.monotonic() + p.confirm_timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        print(f"kos: API not up within {p.confirm_timeout:.0f} s; boot not confirmed", flush=True)
        _reboot_if_unconfirmed(meta_dev)
        os._exit(1)
    print(f"kos: API up at {uptime():.2f} s uptime", flush=True)
    try:
        if meta_dev and confirm_boot(meta_dev):
            print("kos: boot confirmed, fallback slot dropped", flush=True)
    except OSError as exc:
        print(f"kos: cannot confirm the boot in META: {exc}", flush=True)
    os._exit(0)


def _reboot_if_unconfirmed(meta_dev: str) -> None:
    """A new slot that did not come up in time: reboot, so the initramfs rolls back (the slot
    has spent its try). A confirmed system is never rebooted."""
    from kos.platform.image import meta
    from kos.platform.linux import syscalls

    if not meta_dev:
        return
    try:
        state = meta.BootState.from_meta(meta.read(meta_dev))
    except OSError as exc:
        print(f"kos: cannot read META: {exc}", flush=True)
        return
    if not state.fallback:
        return
    print(f"kos: slot {state.active} unconfirmed: rebooting to roll back to slot {state.fallback}", flush=True)
    os.sync()
    syscalls.reboot(syscalls.LINUX_REBOOT_CMD_RESTART)


def uptime() -> float:
    """Seconds since boot (CLOCK_BOOTTIME, what /proc/uptime shows; readable before /proc is
    mounted)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def main() -> None:
    python_up = uptime()  # the interpreter has started and imported this module
    _mounts()
    info = read_boot_info()
    version = Path("/usr/lib/kos/version").read_text().strip() if Path("/usr/lib/kos/version").exists() else "?"
    try:
        params = parse_cmdline(Path("/proc/cmdline").read_text())
    except BootError as exc:
        print(f"kos: bad kernel command line: {exc}; continuing without network set-up", flush=True)
        params = BootParams()
    _etc_files(params)
    try:
        _network(params)
    except Exception as exc:
        print(f"kos: network set-up failed: {exc}", flush=True)
    print(f"kos {version} booted slot {info.get('KOS_SLOT', '?')}: Python up at {python_up:.2f} s, "
          f"init at {uptime():.2f} s uptime, exec machined (maintenance, {params.listen})", flush=True)
    if os.fork() == 0:
        _confirmer(params, info.get("KOS_META", ""))
    os.environ["KOS_BOOT_UPTIME"] = f"{uptime():.2f}"
    os.environ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"  # the kernel passes none
    # not ``python -m kos.machined.main``: -m compiles the module from source at every boot
    os.execv(MACHINED, [MACHINED, "--state-dir", "/system/state", "--listen", params.listen, "--maintenance",
                        "--platform", "qemu"])
