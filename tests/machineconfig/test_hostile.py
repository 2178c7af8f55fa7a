"""Hostile config input (issue 16 part 1): every malformed input - bytes, random YAML trees,
alias bombs and self-referencing aliases, deep nesting, huge scalars, type confusion in a
valid config - is a config error naming the document and path, never another exception,
and never takes long or much memory; the limits themselves are pinned here."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from kos.resources import machineconfig as mc
from kos.resources.machineconfig import yamlio

from .hostile import base_configs, exercise, hostile_inputs

BILLION_LAUGHS = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_inputs)
def test_fuzz_only_config_errors(data: str | bytes) -> None:
    exercise(data)


def errors_of(text: str | bytes) -> mc.ConfigErrors:
    with pytest.raises(mc.ConfigErrors) as ei:
        mc.ConfigContainer.load(text)
    return ei.value


def test_alias_bomb_in_an_opaque_section_is_rejected_before_expansion() -> None:
    body = "".join("      " + line + "\n" for line in BILLION_LAUGHS.splitlines())
    text = f"version: v1alpha1\nmachine:\n  type: worker\n  kubelet:\n    extraConfig:\n{body}"
    assert len(text) < 1000
    t0 = time.perf_counter()
    e = errors_of(text)
    assert time.perf_counter() - t0 < 1.0
    assert e.paths[0].startswith("machine.kubelet.extraConfig.")
    assert "aliases are expanded" in str(e)


def test_aliases_within_budget_still_work() -> None:
    text = "version: v1alpha1\nmachine:\n  type: worker\n  certSANs: &s [a.example, b.example]\n" \
           "  kubelet:\n    extraArgs: {x: y}\ncluster:\n  apiServer:\n    certSANs: *s\n"
    c = mc.ConfigContainer.load(text)
    assert c.config.cluster.api_server.cert_sans == ["a.example", "b.example"]
    docs = yamlio.load_all("a: &x {k: 1}\nb: *x\nc:\n  <<: *x\n  j: 2\n")
    assert docs == [{"a": {"k": 1}, "b": {"k": 1}, "c": {"k": 1, "j": 2}}]


@pytest.mark.parametrize(("text", "path", "expected"), [
    ("a: &a [1, *a]\n", "a[1]", "self-referencing"),
    ("a: &a {b: *a}\n", "a.b", "self-referencing"),
    ("a: *nope\n", "a", "an alias to an anchor defined before it"),
    ("a: " + "[" * 1000 + "]" * 1000 + "\n", "a" + "[0]" * 63, "nested at most 64 deep"),
    ("version: v1alpha1\nmachine:\n  type: " + "9" * 5000 + "\n", "machine.type", "fits in 64 bits"),
    ("version: v1alpha1\nmachine:\n  type: worker\n  type: controlplane\n", "machine.type", "each key once"),
    ("version: v1alpha1\nmachine: !!python/object:os.system {}\n", "machine", "without custom tags"),
    ("version: v1alpha1\nmachine:\n  kubelet:\n    extraConfig: {a: .nan}\n", "machine.kubelet.extraConfig.a",
     "finite number"),
    ("? [a]\n: 1\n", "<document 0>", "plain scalar key"),
    ("apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\nmtu: 1\nmtu: 2\n", "LinkConfig[eth0].mtu", "each key once"),
    ("version: v1alpha1\n---\nversion: v1alpha1\nmachine:\n  type: &t [*t]\n", "machine.type[0]", "self-referencing"),
])
def test_malformed_yaml_names_document_and_path(text: str, path: str, expected: str) -> None:
    e = errors_of(text)
    assert e.errors[0].path.startswith(path), e.errors[0].path
    assert expected in str(e)


def test_non_utf8_binary_and_control_characters() -> None:
    assert "UTF-8" in str(errors_of(b"version: v1alpha1\n\xff\xfe\x00"))
    assert "printable" in str(errors_of("a: \x00\x01\n"))
    assert "printable" in str(errors_of(bytes(range(128))))


def test_wrong_scalar_types_are_config_errors() -> None:
    e = errors_of("version: v1alpha1\nmachine:\n  type: 12\n  network:\n    hostname: 5\n    interfaces: 7\n")
    assert e.paths == ["machine.type", "machine.network.hostname", "machine.network.interfaces"]


def test_size_and_document_limits() -> None:
    e = errors_of("a: " + "x" * (yamlio.MAX_CONFIG_BYTES + 1))
    assert f"at most {yamlio.MAX_CONFIG_BYTES} bytes" in str(e)
    many = "---\n".join("apiVersion: v1alpha1\nkind: StaticHostConfig\nname: 10.0.0.1\nhostnames: [a]\n"
                        for _ in range(yamlio.MAX_DOCUMENTS + 1))
    assert f"at most {yamlio.MAX_DOCUMENTS} documents" in str(errors_of(many))


def test_thousands_of_errors_make_a_short_message() -> None:
    cp, _ = base_configs()
    text = cp.replace("certSANs:", "certSANs: [" + ", ".join(["1"] * 50000) + "]\n  oldCertSANs:", 1)
    t0 = time.perf_counter()
    e = errors_of(text)
    assert time.perf_counter() - t0 < 10
    n = len(e.errors) + e.dropped
    assert n > 50000 - 10
    assert len(str(e)) < 8000 and f"{n} errors" in str(e) and "more" in str(e)


def test_patch_cannot_grow_a_config_past_the_limit() -> None:
    cp, _ = base_configs()
    doc = mc.ConfigContainer.load(cp).to_data()
    ops = [{"op": "copy", "from": "/machine", "path": f"/machine/c{i}"} for i in range(40)]
    with pytest.raises(mc.PatchError, match="exceed"):
        mc.apply_patches(doc, [mc.JSON6902Patch(tuple(ops))])


def test_cli_reports_hostile_files_without_traceback(tmp_path: Path) -> None:
    cp, _ = base_configs()
    good = tmp_path / "good.yaml"
    good.write_text(cp)
    files = {
        "binary": bytes(range(256)) * 4,
        "non-utf8": b"version: v1alpha1\nmachine: \xff\n",
        "deep": ("a: " + "[" * 5000 + "]" * 5000).encode(),
        "bomb": BILLION_LAUGHS.encode(),
        "self-alias": b"a: &a [*a]\n",
        "bigint": b"version: v1alpha1\nmachine:\n  type: " + b"9" * 5000 + b"\n",
        "huge": b"a: " + b"x" * (yamlio.MAX_CONFIG_BYTES + 10),
    }
    for name, data in files.items():
        f = tmp_path / f"{name}.yaml"
        f.write_bytes(data)
        for args in (["validate", "-c", str(f), "-m", "metal"], ["mc", "patch", str(good), "-p", f"@{f}"],
                     ["mc", "patch", str(f), "-p", "machine: {}"], ["mc", "diff", str(good), str(f)]):
            r = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], capture_output=True, text=True,
                               timeout=60, check=False)
            assert r.returncode == 1, (name, args, r.stderr)
            assert "Traceback" not in r.stderr and r.stderr.strip(), (name, args, r.stderr)
            assert len(r.stderr) < 8000, (name, args)


def test_manifests_are_read_with_the_bounded_reader() -> None:
    """Inline manifests are opaque strings in the config: the Kubernetes controllers read them
    with ``load_manifests`` (larger bounds for CRDs), so a bomb inside one is refused too."""
    from kos.controllers.k8s.manifests import ManifestRenderError, parse_inline

    crd = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n" + "".join(
        "  " * (i + 1) + f"k{i}:\n" for i in range(100)) + "  " * 101 + "v: x\n"
    assert len(mc.load_manifests(crd)) == 1  # deeper than a config may be, fine for a manifest
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "".join(
        "  " + line + "\n" for line in BILLION_LAUGHS.splitlines())
    t0 = time.perf_counter()
    with pytest.raises(ManifestRenderError, match="aliases are expanded"):
        parse_inline("bomb", bomb, "cluster.inlineManifests[0]")
    assert time.perf_counter() - t0 < 2
