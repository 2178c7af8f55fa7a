"""``kosctl health --server`` on a local cluster of 1 control plane + 1 worker: the control
plane runs the checks (the ``ClusterHealthCheck`` RPC) against its own API with its client
identity and streams the lines kosctl prints, the same lines as the client-side run; nodes are
discovered from its Members or given; a control plane that is not a node is a FAILED line and
exit code 1; a malformed node address is refused (INVALID_ARGUMENT naming it); the worker runs
the checks as well (with the client certificate the control plane issued it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_namespace_cluster import Cluster, _create

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

CP, W = "10.5.0.2", "10.5.0.3"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = _create(tmp_path, 1, 1)
    try:
        yield c
    finally:
        c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)


def test_health_server_streams_the_checks_and_fails_on_a_missing_node(cluster: Cluster) -> None:
    c = cluster
    # discovered by the node from its Members
    ok = c.ctl("health", "--server", "--wait-timeout", "30")
    lines = ok.stdout.splitlines()
    assert f"discovered nodes: control planes {CP}; workers {W}" in lines, ok.stdout
    for title in ("all nodes' API to answer", "all nodes to finish booting", "time to be in sync",
                  "etcd to be healthy on every control plane", "etcd members to be consistent across nodes",
                  "etcd members to be the control-plane nodes", "no failed services",
                  "every node to be a cluster member", "all nodes to be ready"):
        assert any(ln.startswith(f"waiting for {title}: OK") for ln in lines), ok.stdout

    # given nodes: the same lines as the client-side run
    given = ("--control-plane-nodes", CP, "--worker-nodes", W, "--wait-timeout", "30")
    server = c.ctl("health", "--server", *given).stdout.splitlines()
    client = c.ctl("health", *given).stdout.splitlines()
    assert server == client, (server, client)
    # kos's checks pass; the Kubernetes checks after them are skipped: this cluster has no kubelet
    ready = server.index(next(ln for ln in server if ln.startswith("waiting for all nodes to be ready: OK")))
    kube = ("all k8s nodes to report ready", "all control plane static pods to be running",
            "kube-proxy to report ready", "coredns to report ready")
    assert [ln.split(": OK (skipped: ")[0] for ln in server[ready + 1:]] == [f"waiting for {t}" for t in kube], server

    # through the worker: it runs the checks with its own client certificate (issued by the control plane)
    worker = c.ctl("-n", W, "health", "--server", *given).stdout.splitlines()
    assert worker == server, (worker, server)

    # a control plane that is not a node: a FAILED line, exit 1
    bad = c.ctl("health", "--server", "--control-plane-nodes", "10.5.0.250", "--wait-timeout", "2", check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "waiting for all nodes' API to answer: 10.5.0.250: UNAVAILABLE" in bad.stdout
    assert bad.stdout.splitlines()[-1] == "waiting for all nodes' API to answer: FAILED (timeout)"
    assert "health: FAILED" in bad.stderr

    # a malformed address is refused by the node, naming it
    refused = c.ctl("health", "--server", "--control-plane-nodes", "10.5.0.2:x", check=False)
    assert refused.returncode != 0 and "INVALID_ARGUMENT" in refused.stderr, refused.stderr
    assert "control_plane_nodes[0] '10.5.0.2:x'" in refused.stderr
