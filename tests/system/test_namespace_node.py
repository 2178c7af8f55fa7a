"""On a real namespace node (kosctl cluster create, one control plane): an applied config's
sysctls, files, env, registries and node fields take effect in the node, the unsupported ones
are named in the apply answer and in ConfigFieldStatuses. Slow (a cluster per run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kos.platform.provision.namespaces import ClusterState, node_pid1
from tests.e2e.test_namespace_cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """One control plane whose node API serves (Kubernetes' own health is not what is tested here)."""
    # no Kubernetes here (tests/e2e/test_kubernetes.py runs it): the kubelet waits for its binary
    env = dict(os.environ, KOSCONFIG=str(tmp_path / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path),
               KOS_K8S_DIR=str(tmp_path / "no-kubernetes"))
    c = Cluster("s" + uuid.uuid4().hex[:6], tmp_path / "clusters", env)
    try:
        proc = c.kosctl("cluster", "create", "--name", c.name, "--state-root", str(c.root), "--controlplanes", "1",
                        "--workers", "0", "--wait-timeout", "60", check=False, timeout=400)
        if c.ctl("get", "machinestatus", check=False).returncode != 0:
            raise AssertionError(f"cluster create failed:\n{proc.stdout}\n{proc.stderr}")
        yield c
    finally:
        c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)


def resources(c: Cluster, kind: str) -> dict[str, dict[str, Any]]:
    out = c.ctl("get", kind, "-o", "json").stdout
    docs, pos, decoder = [], 0, json.JSONDecoder()
    while out[pos:].strip():  # a stream of (indented) JSON objects
        pos += len(out[pos:]) - len(out[pos:].lstrip())
        doc, pos = decoder.raw_decode(out, pos)
        docs.append(doc)
    return {d["metadata"]["id"]: d["spec"] for d in docs}


def wait(c: Cluster, kind: str, check: Any, timeout: float = 60) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        got = resources(c, kind)
        if check(got):
            return got
        assert time.monotonic() < deadline, f"{kind}: {got}"
        time.sleep(1)


def test_machine_fields_take_effect_in_a_namespace_node(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    docs = list(yaml.safe_load_all((c.dir / "cp-1" / "config.yaml").read_text()))
    m = docs[0]["machine"]
    m["sysctls"] = {"net.ipv4.conf.all.forwarding": "1", "kernel.pid_max": "65536"}
    m["files"] = [{"path": "/var/etc/demo/app.conf", "content": "hello\n", "op": "create", "permissions": 0o600}]
    m["env"] = {"KOS_E2E": "yes"}
    m["registries"] = {"mirrors": {"docker.io": {"endpoints": ["http://10.5.0.1:5000"]}}}
    m["features"]["kubernetesTalosAPIAccess"] = {"enabled": True}
    m["nodeAnnotations"] = {"kos.dev/e2e": "yes"}
    patched = tmp_path / "patched.yaml"
    patched.write_text("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))
    applied = c.ctl("apply-config", "-f", str(patched), "--mode", "no-reboot")
    out = applied.stdout + applied.stderr  # the answer on stdout, its warnings on stderr (68b2fc7)
    assert "kernel.pid_max" in out and "machine.features.kubernetesTalosAPIAccess: set, but not acted on" in out, out
    assert "field(s) set but not acted on here" in out

    params = wait(c, "kernelparamstatuses", lambda g: "net.ipv4.conf.all.forwarding" in g and "kernel.pid_max" in g)
    assert params["net.ipv4.conf.all.forwarding"]["state"] == "applied"
    assert params["kernel.pid_max"]["state"] == "unsupported"
    pid = node_pid1(ClusterState.load(c.dir).node("cp-1"))
    assert pid is not None
    seen = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "cat", "/proc/sys/net/ipv4/conf/all/forwarding"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "1"  # in the node's own network namespace
    files = wait(c, "machinefilestatuses", lambda g: "/var/etc/demo/app.conf" in g)
    assert files["/var/etc/demo/app.conf"]["state"] == "applied"
    assert (c.dir / "cp-1" / "var/etc/demo/app.conf").read_text() == "hello\n"
    assert wait(c, "environmentstatuses", lambda g: "machine" in g)["machine"]["names"] == ["KOS_E2E"]
    reg = wait(c, "registryhoststatuses", lambda g: "docker.io" in g)
    assert reg["docker.io"]["path"] == "/etc/containerd/certs.d/docker.io/hosts.toml"
    fields = wait(c, "configfieldstatuses", lambda g: "machine.features.kubernetesTalosAPIAccess" in g)
    assert fields["machine.features.kubernetesTalosAPIAccess"]["state"] == "unsupported"
    assert "machine.features.hostDNS" not in fields  # acted on (the node's DNS cache), on by default
    assert "machine.nodeAnnotations" not in fields
