"""Assembling the rootfs tree: usr-merge of unpacked Debian packages, the files kos adds
(/sbin/init, os-release, CA bundle, mount points), layer merging by hard links, the content
checks (no shell, the expected binaries), the kernel module closure for the initramfs and
the reproducible ``mksquashfs`` call. Blocking helpers for ``rootfs-build/build.py``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

BASE_LAYOUT_VERSION = "4"  # bump when finish_base changes, to invalidate cached base layers
USR_MERGED = ("bin", "sbin", "lib", "lib64")
MOUNT_POINTS = ("proc", "sys", "dev", "run", "tmp", "var", "system", "mnt", "etc/kubernetes", "opt")
BIN_DIRS = ("usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")
SHELLS = ("sh", "bash", "dash", "ash", "zsh", "busybox", "toybox", "mksh", "ksh", "csh", "tcsh")
REQUIRED = (
    "sbin/init", "usr/bin/python3", "usr/bin/python3.11", "usr/bin/etcd", "usr/bin/containerd",
    "usr/bin/containerd-shim-runc-v2", "usr/sbin/runc", "etc/ssl/certs/ca-certificates.crt", "usr/lib/kos/version",
    "etc/ld.so.cache",
)
SOURCE_PACKAGES = ("machined", "controllers", "resources", "apis", "platform")
SQUASHFS_FLAGS = (
    "-noappend", "-comp", "zstd", "-Xcompression-level", "3", "-b", "256K", "-all-root", "-all-time", "0",
    "-mkfs-time", "0", "-no-xattrs", "-no-exports", "-reproducible", "-quiet", "-no-progress",
)

INIT = """#!/usr/bin/python3.11 -I
# kos /sbin/init: PID 1 set-up, then exec machined (see kos.platform.image.boot)
from kos.platform.image.boot import main
main()
"""

ENTRYPOINT = """#!/usr/bin/python3.11 -I
import sys
from {module} import main
sys.exit(main())
"""


class BuildError(RuntimeError):
    pass


def module_closure(moddir: Path, wanted: list[str]) -> list[str]:
    """Paths (relative to ``moddir``) of the loadable modules ``wanted`` needs, dependencies
    first; modules built into the kernel are skipped. Dependencies come from each module's
    ``depends=`` modinfo field."""
    by_name: dict[str, str] = {}
    for ko in sorted(moddir.rglob("*.ko")):
        by_name[ko.name[:-3].replace("-", "_")] = str(ko.relative_to(moddir))
    builtin_file = moddir / "modules.builtin"
    builtin = set()
    if builtin_file.exists():
        builtin = {Path(ln).name.removesuffix(".ko").replace("-", "_") for ln in builtin_file.read_text().split()}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in by_name:
            if name in builtin:
                return
            raise BuildError(f"kernel module {name} (needed by {' <- '.join(chain) or 'the initramfs'}) not found")
        out = subprocess.run(["modinfo", "-F", "depends", str(moddir / by_name[name])],
                             capture_output=True, text=True, check=True).stdout.strip()
        for dep in filter(None, out.split(",")):
            visit(dep, (name, *chain))
        order.append(by_name[name])

    for w in wanted:
        visit(w, ())
    return order


def _copy_into(src: Path, dst: Path, *, link: bool) -> None:
    """Copy the tree ``src`` over ``dst`` (later copies win); hard links when ``link``."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        target_dir = dst / rel
        if target_dir.is_symlink():
            raise BuildError(f"{src}: {rel} is a directory here but a symlink in an earlier layer")
        target_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(target_dir, stat.S_IMODE(os.lstat(dirpath).st_mode))
        for name in dirnames + filenames:
            s = Path(dirpath) / name
            d = target_dir / name
            st = s.lstat()
            if stat.S_ISDIR(st.st_mode):
                if d.is_symlink() and not stat.S_ISLNK(st.st_mode):
                    raise BuildError(f"{s}: a directory where an earlier layer has a symlink")
                continue
            if d.is_symlink() or d.exists():
                if d.is_dir() and not d.is_symlink():
                    raise BuildError(f"{s}: a file where an earlier layer has a directory")
                d.unlink()
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif link:
                os.link(s, d)
            else:
                shutil.copy2(s, d)
        # os.walk does not descend into symlinked directories; they were created above
        dirnames[:] = [n for n in dirnames if not (Path(dirpath) / n).is_symlink()]


def usr_merge(raw: Path, root: Path) -> None:
    """``raw`` (packages unpacked as shipped) into ``root`` with /bin, /sbin, /lib, /lib64
    as symlinks into /usr, like a merged-/usr Debian system."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for top in sorted(raw.iterdir()):
        if top.name in USR_MERGED:
            _copy_into(top, root / "usr" / top.name, link=False)
        else:
            _copy_into(top, root / top.name, link=False)
    for name in USR_MERGED:
        (root / "usr" / name).mkdir(parents=True, exist_ok=True)
        os.symlink(f"usr/{name}", root / name)


def finish_base(root: Path) -> None:
    """Files the packages' maintainer scripts would have made, and kos's own /etc."""
    py = root / "usr/bin/python3"
    if not py.exists():
        os.symlink("python3.11", py)
    certs = sorted((root / "usr/share/ca-certificates").rglob("*.crt"))
    if not certs:
        raise BuildError("ca-certificates: no certificates unpacked")
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_bytes(b"".join(c.read_bytes().rstrip(b"\n") + b"\n" for c in certs))
    etc = root / "etc"
    (etc / "passwd").write_text(
        "root:x:0:0:root:/:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    for name, target in (("resolv.conf", "/run/kos/resolv.conf"), ("hosts", "/run/kos/hosts"),
                         ("hostname", "/run/kos/hostname"), ("machine-id", "/run/kos/machine-id")):
        p = etc / name
        if p.exists() or p.is_symlink():
            p.unlink()
        os.symlink(target, p)
    for m in MOUNT_POINTS:
        (root / m).mkdir(parents=True, exist_ok=True)
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))  # all runs as root anyway
    for d in BIN_DIRS:
        for path in sorted((root / d).glob("*")) if (root / d).is_dir() else []:
            if path.is_file() and not path.is_symlink() and needs_shell(path):
                path.unlink()  # a shell script cannot run on kos: no shell
    ldconfig = root / "usr/sbin/ldconfig"
    if ldconfig.exists():  # the static ldconfig of the image writes the image's cache
        subprocess.run([str(ldconfig), "-r", str(root), "-X"], check=True, capture_output=True)
        shutil.rmtree(root / "var/cache/ldconfig", ignore_errors=True)  # aux-cache holds inodes and times


def needs_shell(path: Path) -> bool:
    """A script whose interpreter is a shell."""
    with open(path, "rb") as f:
        head = f.read(128)
    if not head.startswith(b"#!"):
        return False
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        return False
    prog = Path(words[1].decode() if words[0].endswith(b"/env") and len(words) > 1 else words[0].decode()).name
    return prog in SHELLS


def project_dependencies(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return sorted(str(d) for d in deps)


def project_version(pyproject: Path) -> str:
    return str(tomllib.loads(pyproject.read_text())["project"]["version"])


def copy_source(repo: Path, dst: Path) -> None:
    """The files a wheel of kos needs (not tests, docs or build caches)."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / f, dst / f)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    for pkg in SOURCE_PACKAGES:
        shutil.copytree(repo / pkg, dst / pkg, ignore=ignore)


def write_entrypoints(layer: Path, version: str) -> None:
    """/sbin/init, /usr/bin/machined, /usr/bin/kosctl (Python scripts; no shell anywhere)
    and /usr/lib/kos/version."""
    sbin = layer / "usr/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    (sbin / "init").write_text(INIT)
    os.chmod(sbin / "init", 0o755)
    bindir = layer / "usr/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, module in (("machined", "kos.machined.main"), ("kosctl", "kos.apis.kosctl.main")):
        (bindir / name).write_text(ENTRYPOINT.format(module=module))
        os.chmod(bindir / name, 0o755)
    (layer / "usr/lib/kos").mkdir(parents=True, exist_ok=True)
    (layer / "usr/lib/kos/version").write_text(version + "\n")


def merge_layers(layers: list[Path], merged: Path) -> None:
    """``merged`` = the layers in order, hard-linked (fast, no data copied)."""
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    for layer in layers:
        _copy_into(layer, merged, link=True)
    os.chmod(merged, 0o755)


def check_tree(root: Path) -> list[str]:
    """What is wrong with a rootfs tree: a shell present, a setuid file, a required file
    missing."""
    problems: list[str] = []
    for d in BIN_DIRS:
        for sh in SHELLS:
            p = root / d / sh
            if p.exists() or p.is_symlink():
                problems.append(f"/{d}/{sh}: a shell must not be in the rootfs")
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            problems.append(f"/{path.relative_to(root)}: setuid/setgid")
    for rel in REQUIRED:
        p = root / rel
        if not p.exists():
            problems.append(f"/{rel}: missing")
        elif rel.endswith(("bin/" + p.name, "init")) and not os.access(p, os.X_OK):
            problems.append(f"/{rel}: not executable")
    return problems


def missing_libraries(root: Path) -> list[str]:
    """Executables in the bin directories whose shared libraries (DT_NEEDED, read with
    ``readelf``) are not in the tree's library directories. [] when readelf is missing."""
    if shutil.which("readelf") is None:
        return []
    libdirs = [root / "usr/lib/x86_64-linux-gnu", root / "usr/lib", root / "usr/lib64"]
    problems = []
    for d in BIN_DIRS:
        for path in sorted((root / d).glob("*")) if (root / d).is_dir() else []:
            if not path.is_file() or path.is_symlink():
                continue
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
            for line in out.splitlines():
                if "(NEEDED)" in line and "[" in line:
                    lib = line.split("[", 1)[1].rstrip("]")
                    if not any((ld / lib).exists() for ld in libdirs):
                        problems.append(f"/{path.relative_to(root)}: needs {lib}, not in the rootfs")
    return problems


def mksquashfs(src: Path, dst: Path, *, processors: int | None = None) -> None:
    """A reproducible squashfs of ``src``: mksquashfs sorts directory entries itself; owners,
    times and xattrs are fixed by flags, so only names, modes and contents matter."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    cmd = ["mksquashfs", str(src), str(tmp), *SQUASHFS_FLAGS]
    if processors:
        cmd += ["-processors", str(processors)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"mksquashfs {src}: {proc.stderr.strip() or proc.stdout.strip()}")
    tmp.replace(dst)
