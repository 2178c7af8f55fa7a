"""The Kubernetes health checks' judgements (kos.apis.client.kubecheck) and the drain's choice
of pods (kos.controllers.k8s.drain.evictable), on API objects as the server returns them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.apis.client.kubecheck import (
    KubeError,
    check_nodes,
    check_static_pods,
    check_workload,
    image_problems,
)
from kos.controllers.k8s.drain import evictable


def node(name: str, ip: str, ready: bool) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, *, phase: str = "Running", ready: bool = True, waiting: str = "", image: str = "img:1",
        node_name: str = "cp-1", annotations: dict[str, str] | None = None,
        owner: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": {"name": name, "namespace": "kube-system", "annotations": annotations or {},
                         "ownerReferences": [{"kind": owner}] if owner else []},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": image}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "c", "image": image, "state": state, "ready": ready}]}}


def test_nodes_ready_by_address() -> None:
    nodes = [node("cp-1", "10.5.0.2", True), node("w-1", "10.5.0.3", True)]
    assert check_nodes(nodes, ["10.5.0.2", "10.5.0.3"]) == "2 nodes Ready"
    with pytest.raises(KubeError, match=r"no Node for 10.5.0.4"):
        check_nodes(nodes, ["10.5.0.2", "10.5.0.4"])
    with pytest.raises(KubeError, match=r"not Ready: w-1 \(10.5.0.3\)"):
        check_nodes([node("cp-1", "10.5.0.2", True), node("w-1", "10.5.0.3", False)], ["10.5.0.2", "10.5.0.3"])


@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_nodes_check_passes_exactly_when_all_ready(readiness: list[bool]) -> None:
    nodes = [node(f"n-{i}", f"10.5.0.{i + 2}", r) for i, r in enumerate(readiness)]
    want = [f"10.5.0.{i + 2}" for i in range(len(readiness))]
    if all(readiness):
        check_nodes(nodes, want)
    else:
        with pytest.raises(KubeError) as exc:
            check_nodes(nodes, want)
        assert all((f"n-{i} " in str(exc.value)) != r for i, r in enumerate(readiness))


def test_static_pods_on_every_control_plane() -> None:
    pods = [pod(f"{c}-cp-1") for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    assert check_static_pods(pods, ["cp-1"]) == "3 static pods ready"
    with pytest.raises(KubeError, match="kube-apiserver on cp-2: no pod"):
        check_static_pods(pods, ["cp-1", "cp-2"])
    pods[2] = pod("kube-scheduler-cp-1", phase="Pending", ready=False)
    with pytest.raises(KubeError, match="kube-scheduler on cp-1: Pending, not ready"):
        check_static_pods(pods, ["cp-1"])


def test_workloads() -> None:
    assert check_workload(None, "kube-proxy") == "kube-proxy: not deployed"
    ds = {"kind": "DaemonSet", "status": {"desiredNumberScheduled": 2, "numberReady": 1}}
    with pytest.raises(KubeError, match="kube-proxy: 1/2 ready"):
        check_workload(ds, "kube-proxy")
    ds["status"]["numberReady"] = 2
    assert check_workload(ds, "kube-proxy") == "kube-proxy: 2/2 ready"
    dep = {"kind": "Deployment", "spec": {"replicas": 2}, "status": {}}
    with pytest.raises(KubeError, match="coredns: 0/2 ready"):
        check_workload(dep, "coredns")


def test_missing_images_are_named() -> None:
    pods = [pod("coredns-x", waiting="ImagePullBackOff", image="registry.k8s.io/coredns/coredns:v0"),
            pod("kube-proxy-y", waiting="ContainerCreating"), pod("ok")]
    assert image_problems(pods) == [
        "pod kube-system/coredns-x on cp-1: image registry.k8s.io/coredns/coredns:v0 is not present and cannot "
        "be pulled (ImagePullBackOff)"]


def test_drain_evicts_workloads_only() -> None:
    assert evictable(pod("web-1", owner="ReplicaSet"))
    assert not evictable(pod("kube-proxy-1", owner="DaemonSet"))
    assert not evictable(pod("kube-apiserver-cp-1", annotations={"kubernetes.io/config.mirror": "x"}))
    assert not evictable(pod("job-1", phase="Succeeded"))
