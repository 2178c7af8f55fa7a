"""What ``kosctl upgrade-k8s`` waits for (kos.apis.kosctl.k8supgrade), against Kubernetes objects
as the API serves them: a static pod counts only once it runs the new image and is Running and
Ready (an image it cannot pull is named); the kube-proxy DaemonSet only once every pod is updated
and available for the current generation; a kubelet only once its Node reports the target
version and Ready; a wait that does not end says where it stopped and how to resume."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from kos.apis.client.kubecheck import KubeError
from kos.apis.kosctl import k8supgrade as ku
from kos.resources.k8sversion import KubeVersion

TO = KubeVersion(1, 33, 13)
IMG = "registry.k8s.io/kube-apiserver:v1.33.13"


class Access:
    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    async def get(self, path: str) -> Any:
        if path not in self.objects:
            raise KubeError(f"GET {path}: HTTP 404: not found")
        got = self.objects[path]
        if isinstance(got, Exception):
            raise got
        return got


def cluster(objects: dict[str, Any], timeout: float = 5.0) -> tuple[ku.Cluster, list[str]]:
    lines: list[str] = []
    c = ku.Cluster(None, [], Access(objects), lines.append, timeout, names={"10.5.0.2": "cp-1"})
    return c, lines


def pod(image: str, phase: str = "Running", ready: bool = True, waiting: str = "") -> dict[str, Any]:
    st: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}
    if waiting:
        st["containerStatuses"] = [{"name": "c", "state": {"waiting": {"reason": waiting}}}]
    return {"metadata": {"name": "kube-apiserver-cp-1", "namespace": "kube-system"},
            "spec": {"nodeName": "cp-1", "containers": [{"name": "c", "image": image}]}, "status": st}


POD = "/api/v1/namespaces/kube-system/pods/kube-apiserver-cp-1"


@pytest.mark.parametrize(("obj", "done", "state"), [
    (None, False, "no pod yet"),
    (pod("registry.k8s.io/kube-apiserver:v1.32.13"), False, "the pod runs registry.k8s.io/kube-apiserver:v1.32.13"),
    (pod(IMG, "Pending", False, "ImagePullBackOff"), False, f"image {IMG} is not present and cannot be pulled"),
    (pod(IMG, "Running", False), False, "pod Running, not ready"),
    (pod(IMG), True, "ready"),
])
def test_a_static_pod_counts_once_it_runs_the_new_image_ready(obj: Any, done: bool, state: str) -> None:
    c, _ = cluster({POD: obj} if obj else {})
    got = anyio.run(ku.static_pod_probe(c, "10.5.0.2", "kube-apiserver", IMG))
    assert got[0] is done and state in got[1]


def ds(image: str, gen: int, observed: int, desired: int, updated: int, available: int) -> dict[str, Any]:
    return {"metadata": {"generation": gen}, "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
            "status": {"observedGeneration": observed, "desiredNumberScheduled": desired,
                       "updatedNumberScheduled": updated, "numberAvailable": available,
                       "numberUnavailable": desired - available}}


PROXY = "registry.k8s.io/kube-proxy:v1.33.13"


@pytest.mark.parametrize(("obj", "done"), [
    (ds("registry.k8s.io/kube-proxy:v1.32.13", 2, 2, 2, 2, 2), False),
    (ds(PROXY, 3, 2, 2, 2, 2), False),  # the controller has not seen the new template yet
    (ds(PROXY, 3, 3, 2, 1, 2), False),
    (ds(PROXY, 3, 3, 2, 2, 1), False),
    (ds(PROXY, 3, 3, 2, 2, 2), True),
])
def test_kube_proxy_counts_once_rolled_out(obj: Any, done: bool) -> None:
    c, _ = cluster({"/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy": obj})
    assert anyio.run(ku.proxy_probe(c, PROXY))[0] is done


def node_obj(version: str, ready: bool) -> dict[str, Any]:
    return {"status": {"nodeInfo": {"kubeletVersion": version},
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_a_kubelet_counts_once_its_node_reports_the_version_and_ready() -> None:
    for obj, done in ((node_obj("v1.32.13", True), False), (node_obj("v1.33.13", False), False),
                      (node_obj("v1.33.13", True), True)):
        c, _ = cluster({"/api/v1/nodes/cp-1": obj})
        assert anyio.run(ku.kubelet_probe(c, "10.5.0.2", TO))[0] is done


def test_a_wait_prints_each_new_state_and_says_how_to_resume_on_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    c, lines = cluster({POD: KubeError("connection refused")}, timeout=0.1)
    monkeypatch.setattr(ku, "POLL", 0.01)
    with pytest.raises(ku.UpgradeError) as err:
        anyio.run(ku.wait_for, c, "10.5.0.2", "kube-apiserver ready", ku.static_pod_probe(c, "10.5.0.2",
                                                                                        "kube-apiserver", IMG), TO)
    assert lines == [" > 10.5.0.2: Kubernetes API not answering (connection refused)"]
    assert "kube-apiserver ready not within 0 s" in str(err.value)
    assert "run kosctl upgrade-k8s --to v1.33.13 again to resume" in str(err.value)
