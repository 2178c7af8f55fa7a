"""rootfs-build/build: the kos image build (kernel, initramfs, rootfs squashfs, disk image).

Steps and their caches (under --cache, default build/kos-image):
  debs/           apt-get download of packages.txt + kernel-packages.txt (skipped when present)
  kernel-<ver>-<h>/ vmlinux extracted from the Debian bzImage, the modules the initramfs loads
                  (the boot modules, + K8S_MODULES when the image carries the kubelet)
  base-<hash>/    the Debian packages unpacked (dpkg-deb -x), usr-merged, trimmed, stdlib .pyc
  pydeps-<hash>/  kos's PyPI dependencies (pip install --target, compiled)
  kos/            kos itself from a wheel of this checkout's working tree (rebuilt every run: seconds)
  k8s/            the kubelet and CNI plugins from rootfs-build/k8s/build's cache, when it has them
Outputs (--out, default <cache>/out): vmlinux, vmlinuz, initramfs.zst, rootfs.sqsh, disk.raw (with BIOS GRUB
when grub-pc-bin is installed: kos.platform.image.bootloader).
Everything is deterministic: sorted entries, fixed times, stable GUIDs (see docs/image.md).
"""

from __future__ import annotations

import argparse
import compileall
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
try:  # kos must be importable (.ci/setup installs this checkout in editable mode)
    from kos.platform.image import bootloader, cpio, layout, rootfs, vmlinux
    from kos.platform.image import k8s as k8s_artifacts
except ImportError as exc:
    raise SystemExit(f"build: cannot import kos ({exc}); install this checkout first: .ci/setup") from None

MiB = 1 << 20
INITRAMFS = "initramfs.zst"
INITRAMFS_MODULES = [
    "virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "virtio_console",
    "qemu_fw_cfg", "crc32c_generic", "squashfs", "overlay", "xfs", "loop",
]
# What a Kubernetes node's kernel needs that Debian builds as modules (kos has no modprobe: the
# initramfs loads them): bridge/veth for the CNI, vxlan for flannel, br_netfilter for
# net.bridge.bridge-nf-call-iptables, and the netfilter parts kube-proxy's and flannel's
# iptables (xtables-nft-multi: nf_tables with xt matches/targets through nft_compat) load on use.
K8S_MODULES = [
    "bridge", "br_netfilter", "veth", "vxlan",
    "nf_conntrack", "nf_nat", "nf_tables", "nft_compat", "nft_chain_nat", "nft_ct", "nft_masq", "nft_nat",
    "nft_reject_ipv4", "x_tables", "xt_conntrack", "xt_MASQUERADE", "xt_addrtype", "xt_comment", "xt_mark",
    "xt_multiport", "xt_statistic", "xt_nat", "xt_tcpudp", "xt_physdev", "xt_recent", "xt_limit", "ipt_REJECT",
]
SITE = "usr/lib/python3/dist-packages"
TRIM = [
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale",
    "usr/share/bug", "usr/share/bash-completion", "usr/share/zsh", "usr/share/fish", "usr/share/gdb",
    "usr/lib/python3.11/test", "usr/lib/python3.11/idlelib", "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/turtledemo", "usr/lib/python3.11/ensurepip", "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data", "usr/lib/python3.11/unittest/test", "usr/lib/python3.11/distutils",
    "usr/lib/python3.11/config-3.11-x86_64-linux-gnu",
    "etc/init.d", "etc/default", "etc/logrotate.d", "lib/systemd", "usr/lib/systemd",
    "usr/sbin/update-ca-certificates", "usr/lib/x86_64-linux-gnu/gconv",
    "usr/bin/containerd-shim", "usr/bin/containerd-shim-runc-v1",  # legacy shims; kos uses runc-v2
    # libc-bin: only ldconfig stays (ldd is a bash script; the rest are tools for a shell)
    "usr/bin/ldd", "usr/bin/catchsegv", "usr/bin/getconf", "usr/bin/getent", "usr/bin/iconv", "usr/bin/locale",
    "usr/bin/localedef", "usr/bin/pldd", "usr/bin/tzselect", "usr/bin/zdump", "usr/sbin/iconvconfig",
    "usr/sbin/zic", "usr/lib/locale",
    # util-linux: logins and terminals mean nothing without a shell
    "usr/bin/su", "usr/sbin/sulogin", "usr/sbin/agetty", "usr/sbin/getty", "usr/sbin/runuser", "usr/bin/more",
    "usr/bin/last", "usr/bin/lastb", "usr/bin/mesg", "usr/bin/utmpdump", "usr/bin/setterm", "usr/sbin/ldattach",
    "usr/bin/xfs_scrub_all", "usr/sbin/xfs_scrub_all", "usr/sbin/xfs_scrub",  # xfs_scrub needs libicu
]


def log(msg: str) -> None:
    print(f"build: {msg}", flush=True)


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"build: {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


class Steps:
    def __init__(self, cache: Path, out: Path) -> None:
        self.cache = cache
        self.out = out
        self.debs = cache / "debs"
        self.times: dict[str, float] = {}

    def timed(self, name: str, start: float) -> None:
        self.times[name] = round(time.monotonic() - start, 2)

    # -- fetch -------------------------------------------------------------------------
    def fetch(self, names: list[str]) -> dict[str, Path]:
        """name -> .deb path, downloading only what the cache lacks."""
        t = time.monotonic()
        self.debs.mkdir(parents=True, exist_ok=True)
        have = {p.name.split("_")[0]: p for p in self.debs.glob("*.deb")}
        missing = [n for n in names if n not in have]
        if missing:
            log(f"apt-get download {' '.join(missing)}")
            run("apt-get", "download", *missing, cwd=self.debs)
            have = {p.name.split("_")[0]: p for p in self.debs.glob("*.deb")}
        lost = [n for n in names if n not in have]
        if lost:
            raise SystemExit(f"build: packages not downloaded: {', '.join(lost)}")
        self.timed("fetch", t)
        return {n: have[n] for n in names}

    # -- kernel ------------------------------------------------------------------------
    def kernel(self, modules: list[str]) -> tuple[Path, str, list[str]]:
        """(kernel dir, version, load order of ``modules`` and their dependencies relative to
        the modules dir)."""
        t = time.monotonic()
        meta_pkg = "linux-image-amd64"
        dep = next((ln.split(":", 1)[1].strip() for ln in run("apt-cache", "depends", meta_pkg).splitlines()
                    if ln.strip().startswith("Depends:")), None)
        if dep is None:
            raise SystemExit(f"build: cannot resolve {meta_pkg}")
        deb = self.fetch([dep])[dep]
        version = dep.removeprefix("linux-image-")
        kdir = self.cache / f"kernel-{deb.stem}-{digest(*modules)}"
        order_file = kdir / "load-order"
        if not order_file.exists():
            tmp = kdir.with_name(kdir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "x").mkdir(parents=True)
            run("dpkg-deb", "-x", deb, tmp / "x")
            bz = (tmp / "x" / "boot" / f"vmlinuz-{version}").read_bytes()
            (tmp / "vmlinux").write_bytes(vmlinux.extract(bz))
            moddir = tmp / "x" / "lib" / "modules" / version
            order = rootfs.module_closure(moddir, modules)
            mods = tmp / "modules"
            for rel in order:
                (mods / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(moddir / rel, mods / rel)
            (tmp / "load-order").write_text("\n".join(order) + "\n")
            shutil.rmtree(tmp / "x")
            shutil.rmtree(kdir, ignore_errors=True)
            tmp.rename(kdir)
        if not (kdir / "vmlinuz").exists():  # the bzImage, for GRUB (caches older than it lack it)
            fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
            with tarfile.open(fileobj=io.BytesIO(fsys)) as tar:
                member = tar.extractfile(f"./boot/vmlinuz-{version}")
                if member is None:
                    raise SystemExit(f"build: {deb.name} has no boot/vmlinuz-{version}")
                tmpz = kdir / "vmlinuz.tmp"
                tmpz.write_bytes(member.read())
                tmpz.replace(kdir / "vmlinuz")
        self.timed("kernel", t)
        return kdir, version, order_file.read_text().split()

    # -- initramfs ---------------------------------------------------------------------
    def initramfs(self, kdir: Path, order: list[str]) -> Path:
        t = time.monotonic()
        bb = self.fetch(["busybox-static"])["busybox-static"]
        bbdir = self.cache / f"busybox-{bb.stem}"
        if not bbdir.exists():
            tmp = bbdir.with_name(bbdir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            run("dpkg-deb", "-x", bb, tmp)
            tmp.rename(bbdir)
        init_src = [(HERE / "initramfs" / n).read_bytes() for n in ("init", "bootslot.sh")]
        cached = self.cache / f"initramfs-{digest(bb.name, kdir.name, *init_src, *order)}.zst"
        target = self.out / INITRAMFS
        if cached.exists():
            shutil.copyfile(cached, target)
            self.timed("initramfs", t)
            return target
        entries = [
            cpio.Entry.file("bin/busybox", (bbdir / "bin" / "busybox").read_bytes(), 0o755),
            cpio.Entry.file("init", (HERE / "initramfs" / "init").read_bytes(), 0o755),
            cpio.Entry.file("bootslot.sh", (HERE / "initramfs" / "bootslot.sh").read_bytes(), 0o644),
            cpio.Entry.file("lib/modules/load-order", ("\n".join(order) + "\n").encode()),
            cpio.Entry.chardev("dev/console", 5, 1), cpio.Entry.chardev("dev/null", 1, 3, 0o666),
            cpio.Entry.chardev("dev/urandom", 1, 9, 0o666),
        ]
        entries += [e for e in cpio.tree_entries(kdir / "modules", "lib/modules") if e.path.endswith(".ko")]
        raw = cpio.write(entries)
        # zstd, not xz: the kernel unpacks it ~0.6 s sooner under TCG (a quarter of the kernel's
        # boot there) for 10 % more bytes; one thread, fixed level: the same bytes every build
        proc = subprocess.run(["zstd", "-19", "-T1", "-q", "-c"], input=raw, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"build: zstd failed: {proc.stderr.decode()}")
        for old in [*self.cache.glob("initramfs-*.xz"), *self.cache.glob("initramfs-*.zst")]:
            old.unlink()
        cached.write_bytes(proc.stdout)
        shutil.copyfile(cached, target)
        self.timed("initramfs", t)
        return target

    # -- rootfs layers -----------------------------------------------------------------
    def base(self, pkgs: list[str]) -> Path:
        t = time.monotonic()
        debs = self.fetch(pkgs)
        key = digest(*(debs[n].name for n in sorted(debs)), *TRIM, rootfs.BASE_LAYOUT_VERSION)
        bdir = self.cache / f"base-{key}"
        if not bdir.exists():
            log(f"unpacking {len(debs)} Debian packages")
            tmp = bdir.with_name(bdir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            raw = tmp / "raw"
            raw.mkdir(parents=True)
            for n in sorted(debs):
                run("dpkg-deb", "-x", debs[n], raw)
            root = tmp / "root"
            rootfs.usr_merge(raw, root)
            for rel in TRIM:
                p = root / rel
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                elif p.exists() or p.is_symlink():
                    p.unlink()
            rootfs.finish_base(root)
            compile_tree(root / "usr/lib/python3.11", "/usr/lib/python3.11")
            shutil.rmtree(raw)
            (root).rename(bdir.with_name(bdir.name + ".root"))
            shutil.rmtree(tmp)
            bdir.with_name(bdir.name + ".root").rename(bdir)
        self.timed("base", t)
        return bdir

    def pydeps(self) -> Path:
        t = time.monotonic()
        deps = rootfs.project_dependencies(REPO / "pyproject.toml")
        key = digest(*deps, sys.version.split()[0])
        ddir = self.cache / f"pydeps-{key}"
        if not ddir.exists():
            log(f"pip install {' '.join(deps)}")
            tmp = ddir.with_name(ddir.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            site = tmp / SITE
            run(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
                "--only-binary", ":all:", "--target", site, *deps)
            shutil.rmtree(site / "bin", ignore_errors=True)
            for p in list(site.glob("*.dist-info")):
                (p / "RECORD").unlink(missing_ok=True)
            compile_tree(site, "/" + SITE)
            tmp.rename(ddir)
        self.timed("pydeps", t)
        return ddir

    def kos(self) -> Path:
        t = time.monotonic()
        kdir = self.cache / "kos"
        shutil.rmtree(kdir, ignore_errors=True)
        wheels = self.cache / "wheel"
        shutil.rmtree(wheels, ignore_errors=True)
        build_tmp = self.cache / "wheel-build"
        shutil.rmtree(build_tmp, ignore_errors=True)
        src = build_tmp / "src"
        rootfs.copy_source(REPO, src)
        run(sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
            "--no-build-isolation", "-w", wheels, src, env={"SOURCE_DATE_EPOCH": "0"})
        wheel = next(wheels.glob("kos-*.whl"))
        site = kdir / SITE
        run(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
            "--no-deps", "--target", site, wheel)
        shutil.rmtree(site / "bin", ignore_errors=True)
        for p in site.glob("kos-*.dist-info"):
            for name in ("RECORD", "INSTALLER", "direct_url.json", "REQUESTED"):
                (p / name).unlink(missing_ok=True)
        compile_tree(site / "kos", "/" + SITE + "/kos")
        rootfs.write_entrypoints(kdir, rootfs.project_version(REPO / "pyproject.toml"))
        shutil.rmtree(build_tmp)
        self.timed("kos", t)
        return kdir

    def k8s(self, bindir: Path | None, k8s_dir: Path | None) -> Path | None:
        """The node's Kubernetes layer: ``--k8s-bin DIR`` (every file to /usr/local/bin), else
        what ``rootfs-build/k8s/build`` left in its cache: the kubelet in /usr/local/bin and the
        CNI plugins in /opt/cni/bin, containerd's CNI bin_dir (a writable overlay at boot, where
        flannel's DaemonSet adds its plugin). Images stay out: nodes pull them from the
        provisioner's registry, see docs/kubernetes.md. kube-proxy and flannel run in their
        images (with their own iptables and conntrack): the node needs no iptables."""
        files: list[tuple[Path, str]] = []
        if bindir is not None:
            files = [(f, f"usr/local/bin/{f.name}") for f in sorted(bindir.iterdir()) if f.is_file()]
        elif k8s_dir is not None and (k8s_dir / "bin/kubelet").is_file():
            files = [(k8s_dir / "bin/kubelet", "usr/local/bin/kubelet")]
            files += [(p, f"opt/cni/bin/{p.name}") for p in sorted((k8s_dir / "cni").glob("*")) if p.is_file()]
        if not files:
            return None
        kdir = self.cache / "k8s"
        shutil.rmtree(kdir, ignore_errors=True)
        for src, rel in files:
            (kdir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, kdir / rel)
            os.chmod(kdir / rel, 0o755)
        log(f"kubernetes: {', '.join(sorted(rel for _, rel in files))}")
        return kdir

    # -- squashfs and disk -------------------------------------------------------------
    def squash(self, layers: list[Path]) -> Path:
        t = time.monotonic()
        merged = self.cache / "merged"
        rootfs.merge_layers(layers, merged)
        problems = rootfs.check_tree(merged) + rootfs.missing_libraries(merged)
        if problems:
            raise SystemExit("build: the rootfs fails its checks:\n  " + "\n  ".join(problems))
        self.timed("merge", t)
        t = time.monotonic()
        target = self.out / "rootfs.sqsh"
        rootfs.mksquashfs(merged, target)
        self.timed("squashfs", t)
        return target

    def disk(self, sqsh: Path, size_mib: int, initrd: Path) -> Path:
        t = time.monotonic()
        target = self.out / "disk.raw"
        layout.write_image(target, sqsh, size_mib * MiB)
        if bootloader.GRUB_DIR.is_dir():  # self-booting (BIOS): GRUB, kernel and initramfs on EFI
            bootloader.install_grub_bios(target, self.out / "vmlinuz", initrd, bootloader.DEFAULT_CMDLINE)
        else:
            log(f"warning: no {bootloader.GRUB_DIR} (grub-pc-bin): disk.raw has no bootloader")
        self.timed("disk", t)
        return target


def compile_tree(path: Path, ddir: str) -> None:
    """Byte-compile ``path`` with hash-based .pyc (no source mtimes in the output)."""
    import py_compile

    ok = compileall.compile_dir(str(path), ddir=ddir, quiet=2, workers=1,
                                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    if not ok:
        log(f"warning: some files under {path} did not compile (kept as source)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rootfs-build/build", description="build the kos boot image")
    p.add_argument("--cache", type=Path, default=Path(os.environ.get("KOS_IMAGE_CACHE", REPO / "build/kos-image")))
    p.add_argument("--out", type=Path, default=None, help="output directory (default CACHE/out)")
    p.add_argument("--disk-size", type=int, default=2048, help="disk image size in MiB (default 2048)")
    p.add_argument("--k8s-bin", type=Path, default=None, help="directory of Kubernetes binaries for /usr/local/bin")
    p.add_argument("--k8s-dir", type=Path, default=k8s_artifacts.cache_dir(),
                   help="rootfs-build/k8s/build's output: its kubelet and CNI plugins go into the image "
                        "when present (default %(default)s)")
    p.add_argument("--no-k8s", action="store_true", help="no Kubernetes binaries in the image")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    if args.k8s_bin is not None and not args.k8s_bin.is_dir():
        p.error(f"--k8s-bin {args.k8s_bin}: not a directory")
    if args.disk_size < 1024:
        p.error(f"--disk-size {args.disk_size}: expected at least 1024 (MiB)")
    if sys.version_info[:2] != (3, 11):
        p.error(f"the rootfs runs Debian's Python 3.11; build with a Python 3.11 (this is {sys.version.split()[0]})")
    cache = args.cache.resolve()
    out = (args.out or cache / "out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    lock = open(cache / ".lock", "w")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for another build using {cache}")
        fcntl.flock(lock, fcntl.LOCK_EX)
    start = time.monotonic()
    s = Steps(cache, out)
    pkgs = read_list(HERE / "packages.txt")
    k8s = None if args.no_k8s else s.k8s(args.k8s_bin, args.k8s_dir)
    kdir, version, order = s.kernel(INITRAMFS_MODULES + (K8S_MODULES if k8s is not None else []))
    shutil.copyfile(kdir / "vmlinux", out / "vmlinux")
    shutil.copyfile(kdir / "vmlinuz", out / "vmlinuz")
    initrd = s.initramfs(kdir, order)
    layers = [s.base(pkgs), s.pydeps(), s.kos()]
    if k8s is not None:
        layers.append(k8s)
    sqsh = s.squash(layers)
    disk = s.disk(sqsh, args.disk_size, initrd)
    total = round(time.monotonic() - start, 2)
    summary = {
        "kernel": version,
        "seconds": total,
        "steps": s.times,
        "sizes": {p.name: p.stat().st_size for p in (out / "vmlinux", out / "vmlinuz", initrd, sqsh)}
        | {"disk.raw (allocated)": disk.stat().st_blocks * 512, "disk.raw": disk.stat().st_size},
        "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (initrd, sqsh)},
        "out": str(out),
    }
    (out / "build.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        log(f"kernel {version}, done in {total} s ({', '.join(f'{k} {v}s' for k, v in s.times.items())})")
        for name, size in summary["sizes"].items():  # type: ignore[attr-defined]
            log(f"  {name:<22} {size / MiB:8.1f} MiB")
        log(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
