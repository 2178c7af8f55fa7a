"""The file policy of the file RPCs as properties: whatever path a client sends (``..``, ``.``,
repeated slashes, secret names, symlinks out of the roots), ``resolve`` either refuses it with
INVALID_ARGUMENT / PERMISSION_DENIED or returns a resolved path under the roots that is not
withheld; walks never show what resolve would refuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.machined.api.files import ROOTS, FilePolicy

SEGMENTS = st.sampled_from(["..", ".", "", "var", "etc", "proc", "sys", "run", "tmp", "root", "lib", "etcd", "pki",
                            "secrets", "server.key", "cert.pem", "kubeconfig", "log", "1", "environ", "mem",
                            "self", "kcore", "kmsg", "state", "x"])
POLICY = FilePolicy(secret_dirs=(*FilePolicy().secret_dirs, "/var/lib/kos-state"))


@settings(max_examples=400, deadline=None)
@given(st.lists(SEGMENTS, min_size=0, max_size=8), st.booleans())
def test_resolve_returns_only_served_paths(segments: list[str], absolute: bool) -> None:
    path = ("/" if absolute else "") + "/".join(segments)
    absolute = path.startswith("/")
    try:
        real = POLICY.resolve(path)
    except GRPCError as exc:
        assert exc.status in (Status.INVALID_ARGUMENT, Status.PERMISSION_DENIED)
        if exc.status == Status.PERMISSION_DENIED:
            assert exc.message.startswith("access denied: ")
        else:
            assert not absolute or "\0" in path
        return
    assert absolute
    assert real == os.path.realpath(path)
    assert real == "/" or POLICY.under_roots(real)
    assert POLICY.withheld(real) == ""


def test_symlinks_are_resolved_before_the_check(tmp_path: Path) -> None:
    base = Path("/var/tmp") / f"kos-policy-{os.getpid()}"
    base.mkdir(exist_ok=True)
    try:
        (base / "out").symlink_to(tmp_path)  # /tmp/...: outside the roots
        (base / "in").symlink_to("/etc")
        with pytest.raises(GRPCError) as err:
            POLICY.resolve(str(base / "out"))
        assert err.value.status == Status.PERMISSION_DENIED and "resolves to" in (err.value.message or "")
        assert POLICY.resolve(str(base / "in")) == "/etc"
    finally:
        for name in ("out", "in"):
            (base / name).unlink(missing_ok=True)
        base.rmdir()


def test_withheld_names_and_roots() -> None:
    assert set(ROOTS) >= {"/var", "/etc", "/proc", "/sys", "/run"}
    for p in ("/var/lib/etcd/member/snap/db", "/var/lib/kos-state/config.yaml", "/etc/kubernetes/pki/ca.key",
              "/etc/kubernetes/kubeconfig-kubelet", "/proc/1/environ", "/proc/1/task/1/mem", "/proc/kcore",
              "/proc/self/pagemap", "/sys/kernel/tracing/trace_pipe", "/run/secrets/x"):
        assert POLICY.withheld(p), p
    for p in ("/var/log/kos.log", "/etc/hostname", "/proc/cpuinfo", "/etc/kubernetes/manifests/x.yaml"):
        assert POLICY.withheld(p) == "", p
