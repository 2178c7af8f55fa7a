"""What ``rootfs-build/k8s/build --version KUBERNETES_UPGRADE_VERSION`` leaves in its own cache
directory: the six Kubernetes programs reporting that version, the four component images under
their upstream names with the binary where the manifests run it (and the base layers shared
with the cluster release's images), nothing else; a second run only checks; the wrapper module
pins match; a release kos does not build is refused by the build. Skipped when it is not built
(``.ci/setup`` builds it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kos.platform.image import k8s, oci

V = k8s.KUBERNETES_UPGRADE_VERSION
BASE = k8s.cache_dir(V)
SCRIPT = Path(__file__).resolve().parents[2] / "rootfs-build" / "k8s" / "build"
built = pytest.mark.skipif(not (BASE / "images").is_dir(), reason=f"{BASE} not built "
                                                                  f"(run rootfs-build/k8s/build --version {V})")


def _out(*argv: str | Path) -> str:
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False)
    return p.stdout + p.stderr


def test_the_wrapper_module_pins_the_release() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import build  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    assert build.wrapper_dir(V).name == "kubernetes-" + ".".join(V.split(".")[:2])
    assert build.check_pins(version=V) == []
    assert [p.name for p in build.parts(V)] == ["kubernetes"]


def test_a_release_kos_does_not_build_is_refused() -> None:
    proc = subprocess.run([str(SCRIPT), "--version", "v1.31.0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "invalid choice: 'v1.31.0'" in proc.stderr


@built
@pytest.mark.parametrize("name", [b for b in k8s.KUBERNETES_BINARIES if b != "kubectl"])
def test_binaries_report_the_upgrade_release(name: str) -> None:
    assert _out(BASE / "bin" / name, "--version").strip() == f"Kubernetes {V}"


@built
def test_component_images_only_named_as_upstream() -> None:
    assert k8s.built_versions() == [k8s.KUBERNETES_VERSION, V]
    assert sorted(p.name for p in (BASE / "images").glob("*.tar")) == sorted(k8s.component_images(V).values())
    assert _out(BASE / "bin" / "kubectl", "version", "--client").count(f"Client Version: {V}") == 1
    first = oci.open_archive(k8s.cache_dir() / "images" / "kube-apiserver.tar")
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        ref = k8s.component_image(component, V)
        a = oci.open_archive(k8s.image_archives(version=V)[ref])
        assert a.ref == ref and a.config["config"]["Entrypoint"] == [f"/usr/local/bin/{component}"]
        top = {m.name: m for m in a.layer_members(len(a.manifest["layers"]) - 1)}
        assert top[f"usr/local/bin/{component}"].size == (BASE / "bin" / component).stat().st_size
        assert a.manifest["layers"][0]["digest"] == first.manifest["layers"][0]["digest"]  # the shared base layer


@built
def test_a_second_build_only_checks() -> None:
    t0 = time.monotonic()
    out = subprocess.run([str(SCRIPT), "--version", V, "--json"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert time.monotonic() - t0 < 30
    summary = json.loads(out[out.index("{"):])
    assert summary["built"] == [] and summary["version"] == V and summary["out"] == str(BASE.resolve())
    assert "kubernetes: cached" in out and "images: cached (4 archives" in out and "coredns" not in out
