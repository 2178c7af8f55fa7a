"""The first process of a namespace node: build the node's root, pivot into it, exec PID 1.

Run (by the provisioner) as PID 1 of fresh PID, mount, UTS and IPC namespaces, already inside
the node's network namespace::

    python -m kos.platform.provision.nodeinit --root DIR --hostname NAME \
        --state DIR --var DIR [--bind SRC[:DST]]... [--env K=V]... -- COMMAND...

The root is a tmpfs holding only what a node needs, bound read-only from the host: the
shared libraries (``/usr/lib``), the Python installation and kos itself, and the few
binaries machined runs (etcd, containerd, runc). No shell is bound: ``/bin/sh``, ``bash``
and ``busybox`` do not exist inside a node. Writable places are ``/etc`` (generated files),
``/run``, ``/tmp``, ``/system/secrets`` (tmpfs), ``/var`` (the node's EPHEMERAL directory) and ``/system/state``
(its STATE directory). ``/proc`` and ``/sys`` show the node's own processes and interfaces;
the node's own cgroups are mounted writable (``cgroups``: the node runs in its own cgroup
namespace), and host-global kernel tunables the kubelet checks are masked read-only
(``mask_kernel_tunables``). After the pivot, ``/`` is remounted
read-only and the command is exec'ed as PID 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from kos.platform.linux import syscalls as sc

# Binaries a node may run, bound into /usr/bin when the host has them.
NODE_BINARIES = (
    "/usr/bin/etcd",
    "/usr/bin/etcdctl",
    "/usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/bin/ctr",
    "/usr/sbin/runc",
    "/usr/bin/kubelet",
    "/usr/bin/mount",  # the kubelet mounts its volumes (tmpfs, binds) with mount(8)
    "/usr/bin/umount",
)
DEVICES = ("null", "zero", "full", "random", "urandom", "tty", "kmsg")
SHELLS = ("/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/busybox", "/bin/busybox")


def kos_source_dir() -> Path:
    import kos.resources

    return Path(kos.resources.__file__).resolve().parents[1]


def python_prefixes() -> list[Path]:
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.exec_prefix).resolve()}
    return sorted(prefixes)


def _mkdir(root: Path, path: str | Path, mode: int = 0o755) -> Path:
    target = root / str(path).lstrip("/")
    target.mkdir(parents=True, exist_ok=True, mode=mode)
    return target


def _bind_ro(root: Path, src: str | Path, dst: str | Path | None = None) -> None:
    src = Path(src)
    target = root / str(dst or src).lstrip("/")
    if src.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    sc.bind(src, target, readonly=True, recursive=True)


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def build_root(
    root: Path,
    *,
    hostname: str,
    state_dir: Path,
    var_dir: Path,
    binds: Sequence[tuple[str, str, bool]] = (),
) -> None:
    """Mount and fill the node's root at ``root`` (must run in a private mount namespace)."""
    sc.mount("none", "/", "", sc.MS_REC | sc.MS_PRIVATE)
    root.mkdir(parents=True, exist_ok=True)
    sc.mount("tmpfs", root, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755,size=64m")

    # writable places first: the read-only binds below may live under them (a checkout of kos
    # in /tmp stays visible at its own path, which the editable install points at)
    for path in ("run", "tmp"):
        sc.mount("tmpfs", _mkdir(root, path), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777,size=256m")
    _mkdir(root, "root", 0o700)
    var_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    sc.bind(var_dir, _mkdir(root, "var"))
    sc.bind(state_dir, _mkdir(root, "system/state"))
    # runtime secrets (certificates written for etcd, kubelet, ...): memory only, like Talos
    sc.mount("tmpfs", _mkdir(root, "system/secrets"), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=700,size=16m")

    # read-only system content
    _bind_ro(root, "/usr/lib")
    if Path("/usr/lib64").is_dir():
        _bind_ro(root, "/usr/lib64")
    for name, target in (("lib", "usr/lib"), ("lib64", "usr/lib64"), ("bin", "usr/bin"), ("sbin", "usr/sbin")):
        os.symlink(target, root / name)
    _mkdir(root, "usr/bin")
    _mkdir(root, "usr/sbin")
    for binary in NODE_BINARIES:
        if Path(binary).exists():
            _bind_ro(root, Path(binary).resolve(), "/usr/bin/" + Path(binary).name)
    for prefix in python_prefixes():
        _bind_ro(root, prefix)
    src = kos_source_dir()
    _bind_ro(root, src)
    for s, d, writable in binds:
        if writable:
            _mkdir(root, d)
            sc.bind(s, root / d.lstrip("/"), recursive=True)
        else:
            _bind_ro(root, s, d)

    # /etc: generated, writable (resolv.conf and hosts are rendered by machined)
    sc.mount("tmpfs", _mkdir(root, "etc"), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755,size=16m")
    _write(root, "/etc/hostname", hostname + "\n")
    _write(root, "/etc/hosts", f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{hostname}\n")
    _write(root, "/etc/resolv.conf", "")
    _write(root, "/etc/passwd", "root:x:0:0:root:/root:/nonexistent\n")
    _write(root, "/etc/group", "root:x:0:\n")
    _write(root, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    _write(root, "/etc/os-release", 'NAME="kos"\nID=kos\nPRETTY_NAME="kos (namespace node)"\n')
    if Path("/etc/ld.so.cache").exists():
        shutil.copyfile("/etc/ld.so.cache", root / "etc/ld.so.cache")
    if Path("/etc/ssl/certs").is_dir():
        _bind_ro(root, "/etc/ssl/certs")

    # devices
    dev = _mkdir(root, "dev")
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID, "mode=755,size=1m")
    for d in DEVICES:
        if Path("/dev", d).exists():
            (dev / d).touch()
            sc.bind(f"/dev/{d}", dev / d)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev / name)
    _mkdir(root, "dev/pts")
    sc.mount("devpts", dev / "pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    os.symlink("pts/ptmx", dev / "ptmx")
    _mkdir(root, "dev/shm")
    sc.mount("shm", dev / "shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=1777,size=64m")

    # kernel filesystems of this node's namespaces
    sc.mount("proc", _mkdir(root, "proc"), "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    sc.mount("sysfs", _mkdir(root, "sys"), "sysfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY)
    mount_cgroups(root)
    mask_kernel_tunables(root)


# Host-global kernel tunables the kubelet insists on (it refuses to start, or rewrites them for
# the whole host, when they differ). A namespace node cannot own them: it sees these values,
# read-only, and the host keeps its own. VM nodes set them for real. See docs/kubernetes.md.
KUBELET_KERNEL_TUNABLES = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


def mount_cgroups(root: Path) -> None:
    """Fresh cgroup filesystems of the node's cgroup namespace (its own directory is ``/``),
    one per hierarchy the host mounts, writable: runc and the kubelet create cgroups there."""
    from kos.platform.provision import cgroups

    found = cgroups.hierarchies()
    if not found:
        return
    base = root / "sys/fs/cgroup"
    sc.mount("tmpfs", base, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755,size=64k")
    for h in found:
        target = base / h.mountpoint.relative_to(cgroups.CGROUP_ROOT)
        target.mkdir(parents=True, exist_ok=True)
        sc.mount(h.fstype, target, h.fstype, sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, h.options)
    sc.mount("tmpfs", base, "tmpfs", sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
             "mode=755,size=64k")


def mask_kernel_tunables(root: Path) -> None:
    """Bind read-only files holding the kubelet's expected values over host-global sysctls
    that differ (the host's own values stay untouched)."""
    masks = root / "run/.kos-kernel-tunables"
    for rel, want in KUBELET_KERNEL_TUNABLES.items():
        target = root / "proc/sys" / rel
        try:
            have = target.read_text().strip()
        except OSError:
            continue
        if have == want:
            continue
        masks.mkdir(parents=True, exist_ok=True, mode=0o700)
        src = masks / rel.replace("/", ".")
        src.write_text(want + "\n")
        sc.bind(src, target, readonly=True)



def enter_root(root: Path) -> None:
    """pivot_root into ``root``, drop the old root, and make ``/`` read-only."""
    os.chdir(root)
    old = root / ".oldroot"
    old.mkdir(exist_ok=True)
    sc.pivot_root(".", ".oldroot")
    os.chdir("/")
    sc.umount("/.oldroot", sc.MNT_DETACH)
    os.rmdir("/.oldroot")
    sc.mount("tmpfs", "/", "tmpfs", sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV, "mode=755")


def parse_bind(text: str) -> tuple[str, str, bool]:
    parts = text.split(":")
    if len(parts) == 1:
        return parts[0], parts[0], False
    writable = len(parts) == 3 and parts[2] == "rw"
    if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("rw", "ro")):
        raise argparse.ArgumentTypeError(f"--bind {text!r}: expected SRC[:DST[:ro|rw]]")
    return parts[0], parts[1], writable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeinit", description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--var", required=True, type=Path)
    parser.add_argument("--bind", action="append", default=[], type=parse_bind)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to exec as the node's PID 1 is required after --")
    if os.getpid() != 1:
        parser.error("must run as PID 1 of a new PID namespace (the provisioner starts it under unshare)")
    build_root(args.root, hostname=args.hostname, state_dir=args.state, var_dir=args.var, binds=args.bind)
    enter_root(args.root)
    sc.sethostname(args.hostname)
    env = {
        "PATH": ":".join(["/usr/bin", "/usr/sbin", *(str(p / "bin") for p in python_prefixes())]),
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "KOS_PLATFORM": "container",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    os.execve(command[0], command, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
