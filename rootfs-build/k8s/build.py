"""rootfs-build/k8s/build: Kubernetes and what a kos cluster runs with it, built from source
through the Go module proxy, plus the container images, cached by version.

Parts (each cached separately; a second run only checks stamps and versions):
  kubernetes   kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl
               (wrapper module kubernetes/: requires k8s.io/kubernetes, pins the staging modules)
  coredns      coredns (wrapper module coredns/)
  flannel      flanneld (wrapper module flannel/)
  cni-flannel  the flannel CNI plugin, from containernetworking/plugins v0.9.1 (cni-flannel/)
  pause        kos's own pause program (pause/)
  cni          bridge host-local loopback portmap from Debian's containernetworking-plugins
  images       one OCI/docker archive per image (kos.platform.image.oci), Debian files inside

Output: kos.platform.image.k8s.cache_dir() (~/.cache/kos/k8s/<version>): bin/ cni/ images/,
and the .deb files in ../debs (shared between versions). See docs/kubernetes.md.

``--version V`` builds another release of kos.resources.versions.KUBERNETES_VERSIONS (the
upgrade target of ``kosctl upgrade-k8s``) into its own cache directory: only the kubernetes
part (wrapper module kubernetes-vMAJOR.MINOR/) and the four component images
(kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy); the rest is shared.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    from kos.platform.image import k8s, oci, rootfs
except ImportError as exc:
    raise SystemExit(f"k8s build: cannot import kos ({exc}); install this checkout first: .ci/setup") from None

GO = os.environ.get("KOS_GO", "/usr/local/go/bin/go")
IMAGE_LAYOUT_VERSION = "1"  # bump when the image contents change, to rebuild the archives
BUILD_DATE = "1970-01-01T00:00:00Z"
COREDNS_COMMIT = "a7ed346"  # the v1.11.3 tag's commit (Go module proxy .info Origin.Hash)

# Debian packages taken into the images (apt-get download + dpkg-deb -x)
IPTABLES_DEBS = ("libc6", "iptables", "libip4tc2", "libip6tc2", "libxtables12", "libnftnl11", "libmnl0",
                 "libnetfilter-conntrack3", "libnfnetlink0", "conntrack", "libnetfilter-cthelper0",
                 "libnetfilter-cttimeout1", "libnetfilter-queue1")
OTHER_DEBS = ("busybox-static", "ca-certificates", "containernetworking-plugins")
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale",
        "usr/share/bug", "usr/lib/x86_64-linux-gnu/gconv", "usr/share/bash-completion", "etc/init.d",
        "etc/default", "lib/systemd", "usr/lib/systemd", "usr/bin/ldd", "usr/sbin/iptables-apply",
        "usr/sbin/ip6tables-apply", "usr/share/zsh")
XTABLES_LINKS = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                 "ip6tables-restore")
# security.capability (VFS_CAP_REVISION_2, effective) with CAP_NET_BIND_SERVICE: what upstream's
# `setcap cap_net_bind_service=+ep /coredns` stores, so the non-root CoreDNS can bind port 53
CAP_NET_BIND_SERVICE_XATTR = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")


def log(msg: str) -> None:
    print(f"k8s build: {msg}", flush=True)


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"k8s build: {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def go_env() -> dict[str, str]:
    return {"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false",
            "PATH": f"{Path(GO).parent}:{os.environ.get('PATH', '')}"}


@dataclass
class GoPart:
    """One `go build` of a wrapper module: packages -> outputs, checked by running a version command."""

    name: str
    module: Path
    packages: list[str]
    outputs: list[str]  # relative to the output dir, one per package
    ldflags: list[str]
    checks: list[tuple[list[str], str]] = field(default_factory=list)  # (argv with {out} dir, expected text)
    env: dict[str, str] = field(default_factory=dict)

    def inputs_hash(self, go_version: str) -> str:
        files = sorted(p for p in self.module.rglob("*") if p.is_file())
        return sha(go_version, " ".join(self.ldflags), " ".join(self.packages), json.dumps(self.env),
                   *(f"{p.relative_to(self.module)}:{sha(p.read_bytes())}" for p in files))


def wrapper_dir(version: str) -> Path:
    """The wrapper module of a Kubernetes release: kubernetes/ for the cluster release,
    kubernetes-v1.33/ (major.minor) for another."""
    if version == k8s.KUBERNETES_VERSION:
        return HERE / "kubernetes"
    return HERE / ("kubernetes-" + ".".join(version.split(".")[:2]))


def kubernetes_part(v: str = k8s.KUBERNETES_VERSION) -> GoPart:
    major, minor = v.lstrip("v").split(".")[:2]
    ld = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ld += [f"-X {pkg}.gitVersion={v}", f"-X {pkg}.gitMajor={major}", f"-X {pkg}.gitMinor={minor}"]
    ld += ["-X k8s.io/component-base/version.gitTreeState=clean",
           f"-X k8s.io/component-base/version.buildDate={BUILD_DATE}"]
    checks: list[tuple[list[str], str]] = [([f"{{out}}/bin/{b}", "--version"], f"Kubernetes {v}")
                                           for b in k8s.KUBERNETES_BINARIES if b != "kubectl"]
    checks.append((["{out}/bin/kubectl", "version", "--client"], f"Client Version: {v}"))
    return GoPart("kubernetes", wrapper_dir(v), [f"k8s.io/kubernetes/cmd/{b}" for b in k8s.KUBERNETES_BINARIES],
                  [f"bin/{b}" for b in k8s.KUBERNETES_BINARIES], ld, checks)


def parts(version: str = k8s.KUBERNETES_VERSION) -> list[GoPart]:
    if version != k8s.KUBERNETES_VERSION:
        return [kubernetes_part(version)]
    return [
        kubernetes_part(),
        GoPart("coredns", HERE / "coredns", ["github.com/coredns/coredns"], ["bin/coredns"],
               ["-s", "-w", f"-X github.com/coredns/coredns/coremain.GitCommit={COREDNS_COMMIT}"],
               [(["{out}/bin/coredns", "-version"], f"CoreDNS-{k8s.COREDNS_VERSION.lstrip('v')}")]),
        # flannel's UDP backend is cgo on amd64 (as upstream builds it: CGO_ENABLED=1, linked static)
        GoPart("flannel", HERE / "flannel", ["github.com/flannel-io/flannel"], ["bin/flanneld"],
               ["-s", "-w", f"-X github.com/flannel-io/flannel/pkg/version.Version={k8s.FLANNEL_VERSION}",
                "-extldflags '-static'"],
               [(["{out}/bin/flanneld", "--version"], k8s.FLANNEL_VERSION)], env={"CGO_ENABLED": "1"}),
        GoPart("cni-flannel", HERE / "cni-flannel", ["github.com/containernetworking/plugins/plugins/meta/flannel"],
               ["cni/flannel"],
               ["-s", "-w", "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion="
                + k8s.CNI_PLUGINS_SOURCE_VERSION],
               [(["{out}/cni/flannel"], f"CNI flannel plugin {k8s.CNI_PLUGINS_SOURCE_VERSION}")]),
        GoPart("pause", HERE / "pause", ["kos.dev/pause"], ["bin/pause"],
               ["-s", "-w", f"-X main.version={k8s.PAUSE_VERSION}"],
               [(["{out}/bin/pause", "-v"], f"pause.kos {k8s.PAUSE_VERSION}")]),
    ]


PINS = {  # wrapper module -> (module path, the version kos.platform.image.k8s says)
    "kubernetes": ("k8s.io/kubernetes", k8s.KUBERNETES_VERSION),
    "coredns": ("github.com/coredns/coredns", k8s.COREDNS_VERSION),
    "flannel": ("github.com/flannel-io/flannel", k8s.FLANNEL_VERSION),
    "cni-flannel": ("github.com/containernetworking/plugins", k8s.CNI_PLUGINS_SOURCE_VERSION),
}


def check_pins(here: Path = HERE, version: str = k8s.KUBERNETES_VERSION) -> list[str]:
    """The wrapper modules' go.mod files require exactly the versions of kos.platform.image.k8s,
    and the Kubernetes one pins its staging modules to the matching v0 release (for another
    release: its own wrapper module only)."""
    problems = []
    wrapper_k8s = wrapper_dir(version).relative_to(HERE).as_posix()
    pins = dict(PINS) if version == k8s.KUBERNETES_VERSION else {}
    pins[wrapper_k8s] = ("k8s.io/kubernetes", version)
    for wrapper, (module, want) in pins.items():
        lines = [ln.strip() for ln in (here / wrapper / "go.mod").read_text().splitlines()]
        got = [ln.split()[-1] for ln in lines if ln.removeprefix("require ").split()[:1] == [module]]
        if got != [want]:
            problems.append(f"{wrapper}/go.mod requires {module} {got or 'nothing'}, expected {want} "
                            f"(update it: go get {module}@{want} && go mod tidy)")
    staging = "v0." + version.removeprefix("v1.")
    for ln in (here / wrapper_k8s / "go.mod").read_text().splitlines():
        parts = ln.split()
        if (len(parts) == 4 and parts[1] == "=>" and parts[0].startswith("k8s.io/") and parts[3] != staging
                and parts[0] not in STAGING_EXCEPTIONS):
            problems.append(f"{wrapper_k8s}/go.mod replaces {parts[0]} with {parts[3]}, expected {staging}")
    return problems


# staging modules the Go module proxy does not serve at the matching release (see docs/kubernetes.md)
STAGING_EXCEPTIONS = {"k8s.io/endpointslice"}


class Builder:
    def __init__(self, out: Path, jobs: int | None, version: str = k8s.KUBERNETES_VERSION) -> None:
        self.out = out
        self.jobs = jobs
        self.version = version
        self.cluster_release = version == k8s.KUBERNETES_VERSION
        self.image_names = k8s.component_images(version)
        self.debs = out.parent / "debs"
        self.stamps = out / ".stamps"
        self.times: dict[str, float] = {}
        self.built: list[str] = []
        self.go_version = run(GO, "env", "GOVERSION", env=go_env()).strip()

    def stamp_ok(self, name: str, value: str) -> bool:
        p = self.stamps / name
        return p.is_file() and p.read_text().strip() == value

    def write_stamp(self, name: str, value: str) -> None:
        self.stamps.mkdir(parents=True, exist_ok=True)
        (self.stamps / name).write_text(value + "\n")

    def check(self, part: GoPart, base: Path) -> list[str]:
        problems = []
        for argv, expected in part.checks:
            cmd = [a.replace("{out}", str(base)) for a in argv]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            except OSError as exc:
                problems.append(f"{cmd[0]}: {exc}")
                continue
            if expected not in proc.stdout + proc.stderr:
                problems.append(f"{' '.join(cmd)}: expected {expected!r} in its output, got "
                                f"{(proc.stdout + proc.stderr).strip()[:200]!r}")
        return problems

    def go(self, part: GoPart) -> None:
        t0 = time.monotonic()
        want = part.inputs_hash(self.go_version)
        if (self.stamp_ok(part.name, want) and all((self.out / o).is_file() for o in part.outputs)
                and not self.check(part, self.out)):
            self.times[part.name] = round(time.monotonic() - t0, 2)
            log(f"{part.name}: cached ({', '.join(Path(o).name for o in part.outputs)})")
            return
        log(f"{part.name}: building {len(part.packages)} program(s) with {self.go_version} ...")
        stage = Path(tempfile.mkdtemp(prefix=f".{part.name}-", dir=self.out))
        try:
            args = [GO, "build", "-v", "-trimpath", "-ldflags", " ".join(part.ldflags)]
            if self.jobs:
                args += ["-p", str(self.jobs)]
            if len(part.packages) == 1:
                args += ["-o", str(stage / Path(part.outputs[0]).name), part.packages[0]]
            else:
                args += ["-o", str(stage) + "/", *part.packages]
            self._go_build(part.name, args, part.module, part.env)
            for o in part.outputs:
                dst = self.out / o
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / Path(o).name, dst)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        problems = self.check(part, self.out)
        if problems:
            raise SystemExit("k8s build: the built binaries fail their version checks:\n  " + "\n  ".join(problems))
        self.write_stamp(part.name, want)
        self.built.append(part.name)
        self.times[part.name] = round(time.monotonic() - t0, 2)
        log(f"{part.name}: built in {self.times[part.name]:.0f} s")

    def _go_build(self, name: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        """Run go build, printing how many packages it has compiled every 30 s."""
        proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, **go_env(), **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        lines: list[str] = []
        t0 = time.monotonic()
        done = threading.Event()

        def progress() -> None:
            while not done.wait(30):
                log(f"{name}: {len(lines)} packages compiled, {time.monotonic() - t0:.0f} s")

        ticker = threading.Thread(target=progress, daemon=True)
        ticker.start()
        for line in proc.stdout:
            lines.append(line.rstrip())
        rc = proc.wait()
        done.set()
        if rc != 0:
            tail = "\n".join(ln for ln in lines if " " in ln or ":" in ln)[-3000:]
            raise SystemExit(f"k8s build: {name}: go build failed ({rc}):\n{tail}")

    # -- Debian files ------------------------------------------------------------------------
    def fetch(self, names: tuple[str, ...]) -> dict[str, Path]:
        self.debs.mkdir(parents=True, exist_ok=True)
        have = {p.name.split("_")[0]: p for p in self.debs.glob("*.deb")}
        missing = [n for n in names if n not in have]
        if missing:
            log(f"apt-get download {' '.join(missing)}")
            run("apt-get", "download", *missing, cwd=self.debs)
            have = {p.name.split("_")[0]: p for p in self.debs.glob("*.deb")}
        lost = [n for n in names if n not in have]
        if lost:
            raise SystemExit(f"k8s build: Debian packages not downloaded: {', '.join(lost)}")
        return {n: have[n] for n in names}

    def cni(self, debs: dict[str, Path]) -> None:
        t0 = time.monotonic()
        want = sha(debs["containernetworking-plugins"].name)
        dst = self.out / "cni"
        names = [p for p in k8s.CNI_PLUGINS if p != "flannel"]
        if self.stamp_ok("cni", want) and all((dst / n).is_file() for n in names):
            log(f"cni: cached ({' '.join(names)} from {debs['containernetworking-plugins'].name})")
            return
        with tempfile.TemporaryDirectory(dir=self.out) as tmp:
            run("dpkg-deb", "-x", debs["containernetworking-plugins"], tmp)
            dst.mkdir(parents=True, exist_ok=True)
            for n in names:
                shutil.copy2(Path(tmp) / "usr/lib/cni" / n, dst / n)
        self.write_stamp("cni", want)
        self.times["cni"] = round(time.monotonic() - t0, 2)
        log(f"cni: {' '.join(names)} from {debs['containernetworking-plugins'].name}")

    def unpack(self, debs: dict[str, Path], names: tuple[str, ...], dst: Path) -> None:
        raw = dst.with_name(dst.name + "-raw")
        shutil.rmtree(raw, ignore_errors=True)
        raw.mkdir(parents=True)
        for n in names:
            run("dpkg-deb", "-x", debs[n], raw)
        rootfs.usr_merge(raw, dst)
        shutil.rmtree(raw)
        for t in TRIM:
            p = dst / t
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)

    # -- images ------------------------------------------------------------------------------
    def images(self, debs: dict[str, Path]) -> None:
        t0 = time.monotonic()
        if self.cluster_release:
            bins = [self.out / "bin" / b for b in (*k8s.KUBERNETES_BINARIES, "coredns", "flanneld", "pause")]
            bins.append(self.out / "cni" / "flannel")
        else:
            bins = [self.out / "bin" / b for b in k8s.KUBERNETES_BINARIES]
        want = sha(IMAGE_LAYOUT_VERSION, *(p.read_text() for p in sorted(self.stamps.glob("*")) if p.name != "images"),
                   *sorted(d.name for d in debs.values()))
        imgdir = self.out / "images"
        if self.stamp_ok("images", want) and all((imgdir / n).is_file() for n in self.image_names.values()):
            log(f"images: cached ({len(self.image_names)} archives in {imgdir})")
            return
        log(f"images: writing {len(self.image_names)} archives ...")
        for b in bins:
            if not b.is_file():
                raise SystemExit(f"k8s build: images: {b} is missing")
        work = self.out / ".image-work"
        shutil.rmtree(work, ignore_errors=True)
        blob_dir = self.out / "blobs"
        shutil.rmtree(blob_dir, ignore_errors=True)
        try:
            specs = self.image_specs(debs, work)
            imgdir.mkdir(parents=True, exist_ok=True)
            for spec in specs:
                name = self.image_names[spec.ref]
                oci.write_archive(spec, imgdir / name, blob_dir)
                log(f"images: {spec.ref} -> {name} ({(imgdir / name).stat().st_size / 2**20:.1f} MiB)")
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(blob_dir, ignore_errors=True)  # the archives hold every blob
        self.write_stamp("images", want)
        self.built.append("images")
        self.times["images"] = round(time.monotonic() - t0, 2)

    def image_specs(self, debs: dict[str, Path], work: Path) -> list[oci.ImageSpec]:
        # shared base: /etc basics, /tmp, CA bundle, usr-merge symlinks (one blob for all images)
        work.mkdir(parents=True, exist_ok=True)
        ca = work / "ca"
        run("dpkg-deb", "-x", debs["ca-certificates"], ca)
        certs = sorted((ca / "usr/share/ca-certificates").rglob("*.crt"))
        bundle = b"".join(c.read_bytes().rstrip(b"\n") + b"\n" for c in certs)
        base: list[oci.Entry] = [
            oci.Entry("etc/passwd", data=b"root:x:0:0:root:/root:/sbin/nologin\n"
                      b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
                      b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
            oci.Entry("etc/group", data=b"root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n"),
            oci.Entry("etc/nsswitch.conf", data=b"passwd: files\ngroup: files\nhosts: files dns\n"),
            oci.Entry("etc/ssl/certs/ca-certificates.crt", data=bundle),
            oci.Entry("tmp", "dir", mode=0o1777),
            oci.Entry("root", "dir", mode=0o700),
            oci.Entry("home/nonroot", "dir", mode=0o700, uid=65532, gid=65532),
        ]
        base += [oci.Entry(d, "symlink", target=f"usr/{d}") for d in rootfs.USR_MERGED]
        base += [oci.Entry(f"usr/{d}", "dir", mode=0o755) for d in ("bin", "sbin", "lib", "lib64")]
        base_layer = tuple(base)

        # Debian iptables (nft backend, Debian's default alternative) + conntrack with glibc
        ipt = work / "iptables"
        self.unpack(debs, IPTABLES_DEBS, ipt)
        for name in XTABLES_LINKS:
            link = ipt / "usr/sbin" / name
            if link.exists() or link.is_symlink():
                link.unlink()
            os.symlink("xtables-nft-multi", link)
        run("ldconfig", "-r", ipt, "-X")
        shutil.rmtree(ipt / "var/cache/ldconfig", ignore_errors=True)
        problems = rootfs.missing_libraries(ipt)
        if problems:
            raise SystemExit("k8s build: iptables layer:\n  " + "\n  ".join(problems))
        ipt_layer = tuple(e for e in oci.tree(ipt) if e.path not in rootfs.USR_MERGED)

        # busybox-static with its applet links (for cp in flannel's init containers, and the test image)
        bb = work / "busybox"
        run("dpkg-deb", "-x", debs["busybox-static"], bb)
        applets = run(bb / "bin/busybox", "--list-full").split()
        lower = {e.path for e in ipt_layer}
        bb_entries = [oci.file("usr/bin/busybox", bb / "bin/busybox", mode=0o755)]
        for a in sorted(set(applets)):
            top = a.partition("/")[0]
            path = f"usr/{a}" if top in ("bin", "sbin") else a
            if path in lower or path == "usr/bin/busybox":
                continue
            bb_entries.append(oci.Entry(path, "symlink", target="/usr/bin/busybox"))
        bb_layer = tuple(bb_entries)

        def bin_layer(path: str, src: Path, **kw: object) -> tuple[oci.Entry, ...]:
            return (oci.file(path, src, mode=0o755, **kw),)  # type: ignore[arg-type]

        b = self.out / "bin"
        src_label = ("org.opencontainers.image.source", "https://github.com/kubernetes/kubernetes")
        specs = []
        v = self.version
        for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            specs.append(oci.ImageSpec(
                k8s.component_image(comp, v), (base_layer, bin_layer(f"usr/local/bin/{comp}", b / comp)),
                entrypoint=(f"/usr/local/bin/{comp}",),
                labels=(src_label, ("org.opencontainers.image.version", v))))
        specs.append(oci.ImageSpec(
            k8s.component_image("kube-proxy", v),
            (base_layer, ipt_layer, bin_layer("usr/local/bin/kube-proxy", b / "kube-proxy")),
            entrypoint=("/usr/local/bin/kube-proxy",),
            labels=(src_label, ("org.opencontainers.image.version", v))))
        if not self.cluster_release:  # CoreDNS, flannel, pause, busybox: the cluster release's
            return specs
        specs.append(oci.ImageSpec(
            k8s.PAUSE_IMAGE, (bin_layer("pause", b / "pause"),), entrypoint=("/pause",), user="65535:65535",
            env=(), labels=(("org.opencontainers.image.source", "kos rootfs-build/k8s/pause"),)))
        specs.append(oci.ImageSpec(
            k8s.COREDNS_IMAGE,
            (base_layer, bin_layer("coredns", b / "coredns",
                                   xattrs=(("security.capability", CAP_NET_BIND_SERVICE_XATTR),))),
            entrypoint=("/coredns",), user="65532:65532", exposed_ports=("53/tcp", "53/udp"),
            labels=(("org.opencontainers.image.source", "https://github.com/coredns/coredns"),
                    ("org.opencontainers.image.version", k8s.COREDNS_VERSION))))
        specs.append(oci.ImageSpec(
            k8s.FLANNEL_IMAGE,
            (base_layer, ipt_layer, bb_layer, bin_layer("opt/bin/flanneld", b / "flanneld")),
            entrypoint=("/opt/bin/flanneld",),
            labels=(("org.opencontainers.image.source", "https://github.com/flannel-io/flannel"),
                    ("org.opencontainers.image.version", k8s.FLANNEL_VERSION))))
        specs.append(oci.ImageSpec(
            k8s.FLANNEL_CNI_IMAGE, (base_layer, bb_layer, bin_layer("flannel", self.out / "cni/flannel")),
            cmd=("/bin/sh",),
            labels=(("org.opencontainers.image.source", "https://github.com/containernetworking/plugins"),
                    ("org.opencontainers.image.version", k8s.CNI_PLUGINS_SOURCE_VERSION),
                    ("org.opencontainers.image.description",
                     "flannel CNI plugin built from containernetworking/plugins plugins/meta/flannel"))))
        specs.append(oci.ImageSpec(
            k8s.BUSYBOX_IMAGE, (base_layer, bb_layer), cmd=("sh",),
            labels=(("org.opencontainers.image.source", f"Debian {debs['busybox-static'].name}"),)))
        return specs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rootfs-build/k8s/build", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--version", default=k8s.KUBERNETES_VERSION, choices=k8s.KUBERNETES_VERSIONS,
                   help=f"the Kubernetes release (default {k8s.KUBERNETES_VERSION}; another one builds only "
                        "the Kubernetes programs and the four component images)")
    p.add_argument("--out", type=Path, default=None, help=f"output directory (default {k8s.cache_dir()}, "
                                                           "<cache root>/VERSION for another release)")
    p.add_argument("--jobs", type=int, default=None, help="go build -p (default: number of CPUs)")
    p.add_argument("--skip-images", action="store_true", help="binaries only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    if not Path(GO).is_file():
        p.error(f"{GO}: no Go toolchain (install Go at /usr/local/go or set KOS_GO)")
    version: str = args.version
    out = (args.out or k8s.cache_dir(version)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "w")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for another build using {out}")
        fcntl.flock(lock, fcntl.LOCK_EX)
    problems = check_pins(version=version)
    if problems:
        raise SystemExit("k8s build: the wrapper modules disagree with kos.platform.image.k8s:\n  "
                         + "\n  ".join(problems))
    start = time.monotonic()
    b = Builder(out, args.jobs, version)
    if b.cluster_release:
        log(f"Kubernetes {version}, CoreDNS {k8s.COREDNS_VERSION}, flannel {k8s.FLANNEL_VERSION} -> {out}")
    else:
        log(f"Kubernetes {version} (programs and component images; the rest is {k8s.KUBERNETES_VERSION}'s) "
            f"-> {out}")
    for part in parts(version):
        b.go(part)
    debs = b.fetch(IPTABLES_DEBS + OTHER_DEBS)
    if b.cluster_release:
        b.cni(debs)
    if not args.skip_images:
        b.images(debs)
    total = round(time.monotonic() - start, 2)
    summary = {"version": version, "out": str(out), "seconds": total, "steps": b.times,
               "built": b.built, "go": b.go_version}
    (out / "build.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        what = f"built {', '.join(b.built)}" if b.built else "everything cached"
        log(f"done in {total:.1f} s ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
