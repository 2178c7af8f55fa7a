"""What ``rootfs-build/k8s/build`` leaves in the cache: the binaries report the pinned
versions, the CNI plugins are there, every image archive is named as upstream names it with
the entrypoint, user and files the rendered manifests rely on, and the pause program behaves
(exits 0 on SIGTERM/SIGINT, reaps orphans as PID 1 of a PID namespace).

Skipped when the cache is not built (``.ci/setup`` builds it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kos.platform.image import k8s, oci

BASE = k8s.cache_dir()
pytestmark = pytest.mark.skipif(not (BASE / "images").is_dir(),
                                reason=f"{BASE} not built (run rootfs-build/k8s/build)")


def _out(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False,
                       env=env)
    return p.stdout + p.stderr


@pytest.mark.parametrize("name", [b for b in k8s.KUBERNETES_BINARIES if b != "kubectl"])
def test_kubernetes_binaries_report_the_pinned_version(name: str) -> None:
    assert _out(k8s.binary(name), "--version").strip() == f"Kubernetes {k8s.KUBERNETES_VERSION}"


def test_kubectl_and_addons_report_their_versions() -> None:
    assert f"Client Version: {k8s.KUBERNETES_VERSION}" in _out(k8s.binary("kubectl"), "version", "--client")
    assert f"CoreDNS-{k8s.COREDNS_VERSION[1:]}" in _out(k8s.binary("coredns"), "-version")
    assert _out(k8s.binary("flanneld"), "--version").strip() == k8s.FLANNEL_VERSION
    assert _out(k8s.binary("pause"), "-v").strip() == f"pause.kos {k8s.PAUSE_VERSION}"


def test_cni_plugins_answer_the_version_command() -> None:
    for plugin in k8s.CNI_PLUGINS:
        out = _out(BASE / "cni" / plugin, env={"CNI_COMMAND": "VERSION"})
        assert '"supportedVersions"' in out and "0.3.1" in out, (plugin, out)
    # the flannel plugin (containernetworking/plugins v0.9.1) speaks CNI up to 0.4.0
    assert "1.0.0" not in _out(BASE / "cni" / "flannel", env={"CNI_COMMAND": "VERSION"})


def _archive(ref: str) -> oci.Archive:
    return oci.open_archive(BASE / "images" / k8s.IMAGES[ref])


def test_every_archive_carries_its_upstream_name() -> None:
    assert set(k8s.image_archives()) == set(k8s.IMAGES)
    for ref in k8s.IMAGES:
        a = _archive(ref)
        assert a.ref == ref
        assert a.config["os"] == "linux" and a.config["architecture"] == "amd64"


@pytest.mark.parametrize("component", ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"])
def test_control_plane_images_hold_their_binary_where_the_manifests_run_it(component: str) -> None:
    a = _archive(k8s.component_image(component))
    assert a.config["config"]["Entrypoint"] == [f"/usr/local/bin/{component}"]
    top = {m.name: m for m in a.layer_members(len(a.manifest["layers"]) - 1)}
    binary = top[f"usr/local/bin/{component}"]
    assert binary.mode == 0o755 and binary.size == k8s.binary(component).stat().st_size


def test_kube_proxy_and_flannel_images_have_iptables_with_its_libraries() -> None:
    for ref in (k8s.component_image("kube-proxy"), k8s.FLANNEL_IMAGE):
        a = _archive(ref)
        names = {m.name: m for i in range(len(a.manifest["layers"])) for m in a.layer_members(i)}
        for tool in ("iptables", "ip6tables", "iptables-restore", "iptables-save", "ip6tables-restore"):
            assert names[f"usr/sbin/{tool}"].linkname == "xtables-nft-multi", (ref, tool)
        for f in ("usr/sbin/xtables-nft-multi", "usr/sbin/conntrack", "usr/lib/x86_64-linux-gnu/libc.so.6",
                  "usr/lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/libnftnl.so.11",
                  "usr/lib/x86_64-linux-gnu/xtables/libxt_MASQUERADE.so", "etc/ld.so.cache"):
            assert f in names, (ref, f)
        assert names["lib"].linkname == "usr/lib"


def test_addon_images_match_the_rendered_manifests() -> None:
    cd = _archive(k8s.COREDNS_IMAGE)
    assert cd.config["config"]["Entrypoint"] == ["/coredns"]
    assert cd.config["config"]["User"] == "65532:65532"
    coredns = {m.name: m for m in cd.layer_members(1)}["coredns"]
    assert "SCHILY.xattr.security.capability" in coredns.pax_headers  # binds :53 as non-root
    fl = _archive(k8s.FLANNEL_IMAGE)
    assert fl.config["config"]["Entrypoint"] == ["/opt/bin/flanneld"]
    fl_names = {m.name for i in range(len(fl.manifest["layers"])) for m in fl.layer_members(i)}
    assert {"opt/bin/flanneld", "usr/bin/cp", "usr/bin/busybox"} <= fl_names
    cni = _archive(k8s.FLANNEL_CNI_IMAGE)
    cni_names = {m.name for i in range(len(cni.manifest["layers"])) for m in cni.layer_members(i)}
    assert {"flannel", "usr/bin/cp"} <= cni_names
    pause = _archive(k8s.PAUSE_IMAGE)
    assert pause.config["config"]["Entrypoint"] == ["/pause"] and pause.config["config"]["User"] == "65535:65535"
    bb = _archive(k8s.BUSYBOX_IMAGE)
    assert bb.config["config"]["Cmd"] == ["sh"]
    busybox = bb.read_file("usr/bin/busybox")
    assert busybox is not None and busybox.startswith(b"\x7fELF")


def test_shared_layers_are_stored_once_across_images() -> None:
    proxy = _archive(k8s.component_image("kube-proxy")).manifest["layers"]
    flannel = _archive(k8s.FLANNEL_IMAGE).manifest["layers"]
    apiserver = _archive(k8s.component_image("kube-apiserver")).manifest["layers"]
    assert proxy[0] == flannel[0] == apiserver[0]  # base
    assert proxy[1] == flannel[1]  # Debian iptables + glibc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_pause_exits_zero_on_termination_signals(sig: signal.Signals) -> None:
    p = subprocess.Popen([str(k8s.binary("pause"))], stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    assert p.poll() is None  # pauses
    p.send_signal(sig)
    assert p.wait(10) == 0
    assert "Shutting down, got signal" in (p.stderr.read() if p.stderr else "")


def test_pause_as_pid_one_reaps_orphans() -> None:
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(k8s.binary("pause"))],
                         stderr=subprocess.DEVNULL)
    pause_pid = None
    try:
        deadline = time.monotonic() + 10
        while pause_pid is None and time.monotonic() < deadline:
            kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
            pause_pid = int(kids[0]) if kids else None
            time.sleep(0.05)
        assert pause_pid is not None
        # a process entering the namespace leaves an orphan, which the kernel gives to pause (PID 1)
        subprocess.run(["nsenter", "--target", str(pause_pid), "--pid", "--", "sh", "-c", "sleep 0.3 & exit 0"],
                       check=True, timeout=10)
        ns = os.readlink(f"/proc/{pause_pid}/ns/pid")

        def others() -> list[str]:
            out = []
            for d in Path("/proc").iterdir():
                if d.name.isdigit() and int(d.name) != pause_pid:
                    try:
                        if os.readlink(d / "ns/pid") == ns:
                            out.append((d / "stat").read_text().split(")")[1].split()[0])
                    except OSError:
                        pass
            return out

        deadline = time.monotonic() + 10
        while others() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert others() == []  # the orphan exited and was reaped: no zombie left
    finally:  # unshare ignores SIGTERM while it waits: stop pause itself, which exits 0
        if pause_pid is not None:
            os.kill(pause_pid, signal.SIGTERM)
        else:
            p.kill()
        assert p.wait(10) == 0 or pause_pid is None


def test_a_second_build_only_checks() -> None:
    """.ci/setup built the cache: running the build again rebuilds nothing and takes seconds."""
    script = Path(__file__).resolve().parents[2] / "rootfs-build" / "k8s" / "build"
    t0 = time.monotonic()
    out = subprocess.run([str(script), "--out", str(BASE), "--json"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert time.monotonic() - t0 < 30
    summary = json.loads(out[out.index("{"):])
    assert summary["built"] == [] and summary["version"] == k8s.KUBERNETES_VERSION
    for part in ("kubernetes", "coredns", "flannel", "cni-flannel", "pause", "cni", "images"):
        assert f"{part}: cached" in out
