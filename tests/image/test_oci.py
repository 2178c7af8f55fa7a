"""The OCI/docker image archive writer: determinism, what the reader sees (names, config,
files, xattrs, symlinks), GNU tar reading the layers, and bad input; the k8s build's wrapper
modules agree with the version constants."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.platform.image import oci

E = oci.Entry


def _spec(ref: str = "registry.example.com/team/tool:v1", payload: bytes = b"payload\n") -> oci.ImageSpec:
    return oci.ImageSpec(
        ref,
        ((E("etc/passwd", data=b"root:x:0:0::/:/sbin/nologin\n"), E("tmp", "dir", mode=0o1777)),
         (E("usr/local/bin/tool", data=payload, mode=0o755,
            xattrs=(("security.capability", bytes.fromhex("0100000200040000" + "00" * 12)),)),
          E("bin", "symlink", target="usr/bin"))),
        entrypoint=("/usr/local/bin/tool",), user="65532:65532", exposed_ports=("53/udp",),
        labels=(("org.opencontainers.image.version", "v1"),))


def test_archive_names_the_image_and_carries_its_config(tmp_path: Path) -> None:
    digest = oci.write_archive(_spec(), tmp_path / "img.tar", tmp_path / "blobs")
    a = oci.open_archive(tmp_path / "img.tar")
    assert a.ref == "registry.example.com/team/tool:v1"
    assert a.manifest_digest == digest
    cfg = a.config["config"]
    assert cfg["Entrypoint"] == ["/usr/local/bin/tool"]
    assert cfg["User"] == "65532:65532"
    assert cfg["ExposedPorts"] == {"53/udp": {}}
    assert a.config["os"] == "linux" and a.config["architecture"] == "amd64"
    assert len(a.config["rootfs"]["diff_ids"]) == len(a.manifest["layers"]) == 2
    assert a.read_file("/usr/local/bin/tool") == b"payload\n"
    assert a.read_file("etc/passwd", ) == b"root:x:0:0::/:/sbin/nologin\n"
    assert a.read_file("nope") is None
    with tarfile.open(tmp_path / "img.tar") as t:
        docker = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
    assert docker[0]["RepoTags"] == ["registry.example.com/team/tool:v1"]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"


def test_layers_have_parents_modes_xattrs_and_symlinks(tmp_path: Path) -> None:
    oci.write_archive(_spec(), tmp_path / "img.tar", tmp_path / "blobs")
    a = oci.open_archive(tmp_path / "img.tar")
    top = {m.name.rstrip("/"): m for m in a.layer_members(1)}
    assert list(top) == ["bin", "usr", "usr/local", "usr/local/bin", "usr/local/bin/tool"]
    tool = top["usr/local/bin/tool"]
    assert tool.mode == 0o755 and tool.mtime == 0 and tool.uid == 0
    assert tool.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") \
        == bytes.fromhex("0100000200040000" + "00" * 12)
    assert top["bin"].issym() and top["bin"].linkname == "usr/bin"
    bottom = {m.name.rstrip("/"): m for m in a.layer_members(0)}
    assert bottom["tmp"].mode == 0o1777


def test_gnu_tar_reads_a_layer(tmp_path: Path) -> None:
    oci.write_archive(_spec(), tmp_path / "img.tar", tmp_path / "blobs")
    a = oci.open_archive(tmp_path / "img.tar")
    layer = tmp_path / "blobs" / a.manifest["layers"][1]["digest"][7:]
    out = subprocess.run(["tar", "-tzvf", str(layer)], capture_output=True, text=True, check=True).stdout
    assert "usr/local/bin/tool" in out and "bin -> usr/bin" in out


@settings(max_examples=15, deadline=None)
@given(st.binary(max_size=2000))
def test_same_inputs_same_digests_anywhere(tmp_path_factory: pytest.TempPathFactory, payload: bytes) -> None:
    d1, d2 = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    m1 = oci.write_archive(_spec(payload=payload), d1 / "x.tar", d1 / "blobs")
    m2 = oci.write_archive(_spec(payload=payload), d2 / "y.tar", d2 / "other")
    assert m1 == m2
    assert (d1 / "x.tar").read_bytes() == (d2 / "y.tar").read_bytes()


def test_equal_layers_are_one_blob(tmp_path: Path) -> None:
    base = (E("etc/os-release", data=b"ID=kos\n"),)
    oci.write_archive(oci.ImageSpec("r.example/a:1", (base, (E("a", data=b"a"),))), tmp_path / "a.tar", tmp_path / "b")
    oci.write_archive(oci.ImageSpec("r.example/b:1", (base, (E("b", data=b"b"),))), tmp_path / "b.tar", tmp_path / "b")
    la = oci.open_archive(tmp_path / "a.tar").manifest["layers"]
    lb = oci.open_archive(tmp_path / "b.tar").manifest["layers"]
    assert la[0] == lb[0] and la[1] != lb[1]


@pytest.mark.parametrize("ref", ["pause:3.10", "registry.k8s.io/pause", "pause/x:1", "registry.k8s.io/a:b/c"])
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises(oci.ImageError, match="image reference"):
        oci.split_ref(ref)


def test_bad_entries_are_refused() -> None:
    with pytest.raises(oci.ImageError, match="without '\\.\\.'"):
        E("../etc/passwd", data=b"")
    with pytest.raises(oci.ImageError, match="exactly one of source and data"):
        E("etc/x")
    with pytest.raises(oci.ImageError, match="kind 'fifo'"):
        E("etc/x", "fifo")
    with pytest.raises(oci.ImageError, match="needs a target"):
        E("etc/x", "symlink")


def test_reader_refuses_what_is_not_an_image(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as t:
        t.add(__file__, "index.json")
    with pytest.raises(oci.ImageError, match="not an OCI image layout"):
        oci.open_archive(bad)
    oci.write_archive(_spec(), tmp_path / "img.tar", tmp_path / "blobs")
    # a tampered manifest no longer matches its digest
    a = oci.open_archive(tmp_path / "img.tar")
    tampered = tmp_path / "t.tar"
    with tarfile.open(tmp_path / "img.tar") as src, tarfile.open(tampered, "w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            if m.name == f"blobs/sha256/{a.manifest_digest[7:]}":
                data = f.read().replace(b"schemaVersion", b"schemaversion")  # type: ignore[union-attr]
                m.size = len(data)
                f = io.BytesIO(data)
            dst.addfile(m, f)
    with pytest.raises(oci.ImageError, match="does not match its digest"):
        oci.open_archive(tampered)


def _k8s_build_module() -> object:
    path = Path(__file__).resolve().parents[2] / "rootfs-build" / "k8s" / "build.py"
    spec = importlib.util.spec_from_file_location("kos_k8s_build", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["kos_k8s_build"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_wrapper_modules_pin_the_versions_kos_names(tmp_path: Path) -> None:
    build = _k8s_build_module()
    assert build.check_pins() == []  # type: ignore[attr-defined]
    # a go.mod that drifted from the constant is named with the fix
    here = tmp_path / "k8s"
    shutil.copytree(Path(build.__file__).parent, here, ignore=shutil.ignore_patterns("go.sum"))  # type: ignore[attr-defined]
    gomod = here / "coredns" / "go.mod"
    gomod.write_text(gomod.read_text().replace("coredns v1.11.3", "coredns v1.11.1"))
    kmod = here / "kubernetes" / "go.mod"
    kmod.write_text(kmod.read_text().replace("k8s.io/api v0.32.13", "k8s.io/api v0.32.1"))
    problems = build.check_pins(here)  # type: ignore[attr-defined]
    assert len(problems) == 2
    assert "coredns/go.mod requires github.com/coredns/coredns ['v1.11.1'], expected v1.11.3" in problems[0]
    assert "go get github.com/coredns/coredns@v1.11.3" in problems[0]
    assert "replaces k8s.io/api with v0.32.1, expected v0.32.13" in problems[1]
