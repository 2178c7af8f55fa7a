"""machine.nodeLabels / nodeAnnotations / nodeTaints and cluster.allowSchedulingOnControlPlanes
on the Node object of a real kube-apiserver (with NodeRestriction): NodeLabelSpecs,
NodeAnnotationSpecs, NodeTaintSpecs rendered from the config, server-side applied as the
admin on a control plane and as the kubelet itself on a worker; removing an entry from the
config removes it from the Node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kos.controllers.runtime.testing import assert_resources
from kos.controllers.system.configspecs import ConfigSpecsController
from kos.controllers.system.node import (
    CONTROL_PLANE_LABEL,
    CONTROL_PLANE_TAINT,
    NodeApplyController,
    kubelet_may_set,
    node_annotations,
    node_labels,
    node_taints_specs,
)
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.config import MachineTypeSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.k8s import NAMESPACE as K8S_NS
from kos.resources.k8s import (
    NODE_APPLY_STATUSES,
    NodeAnnotationSpecSpec,
    NodeLabelSpecSpec,
    NodenameSpec,
    NodeTaintSpecSpec,
)
from kos.resources.secrets import K8S_CERTS_ID, K8S_ROOT_ID, KubernetesCertsSpec, KubernetesRootSpec
from kos.resources.secrets import NAMESPACE as SECRETS_NS
from tests.system.helpers import running, set_config
from tests.system.kubeapi import KubeAPI

pytestmark = pytest.mark.anyio


def config(machine_type: str, machine: str = "", cluster: str = "") -> str:
    return f"""version: v1alpha1
machine:
  type: {machine_type}
  {machine}
cluster:
  controlPlane: {{endpoint: "https://127.0.0.1:6443"}}
  {cluster}
"""


def controllers(**kw: Any) -> list[Any]:
    return [ConfigSpecsController("system.NodeLabelConfigController", NodeLabelSpecSpec, node_labels),
            ConfigSpecsController("system.NodeAnnotationConfigController", NodeAnnotationSpecSpec, node_annotations),
            ConfigSpecsController("system.NodeTaintConfigController", NodeTaintSpecSpec, node_taints_specs),
            NodeApplyController(retry_interval=0.3, **kw)]


async def node_facts(state: InMemoryState, name: str, machine_type: str) -> None:
    await state.create(Resource.new(NodenameSpec(nodename=name, hostname=name), "nodename", namespace=K8S_NS))
    await state.create(Resource.new(MachineTypeSpec(machine_type=machine_type), "machine-type", namespace=CONFIG_NS))


def register(kube: KubeAPI, name: str) -> None:
    """What the kubelet does at start: create its own Node with its own identity."""
    kubelet = kube.identity(f"system:node:{name}", ["system:nodes"])
    kube.call("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}},
              who=kubelet)


def test_control_planes_get_the_role_label_and_taint_unless_allowed() -> None:
    from kos.resources.machineconfig import ConfigContainer

    cp = ConfigContainer.load(config("controlplane", "nodeLabels: {team: a}"), strict=False)
    assert {k: s.value for k, s in node_labels(cp).items()} == {"team": "a", CONTROL_PLANE_LABEL: ""}  # type: ignore
    assert list(node_taints_specs(cp)) == [CONTROL_PLANE_TAINT]
    allowed = ConfigContainer.load(config("controlplane", cluster="allowSchedulingOnControlPlanes: true"), strict=False)
    assert node_taints_specs(allowed) == {}
    worker = ConfigContainer.load(config("worker", "nodeTaints: {dedicated: 'gpu:NoExecute'}"), strict=False)
    assert list(node_labels(worker)) == [] and node_taints_specs(worker)["dedicated"] == NodeTaintSpecSpec(
        key="dedicated", value="gpu", effect="NoExecute")
    bad = ConfigContainer.load(config("worker", "nodeTaints: {x: 'y:Sometimes'}"), strict=False)
    with pytest.raises(ValueError, match=r"machine\.nodeTaints\.x"):
        node_taints_specs(bad)
    assert kubelet_may_set("team") and kubelet_may_set("node.kubernetes.io/pool")
    assert not kubelet_may_set(CONTROL_PLANE_LABEL) and not kubelet_may_set("example.k8s.io/x")


def node(kube: KubeAPI, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kube.call("GET", f"/api/v1/nodes/{name}")
    return obj


async def test_a_control_plane_applies_labels_annotations_and_taints_as_admin(kube_api: KubeAPI,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from kos.controllers.system import node as node_module

    contexts: list[int] = []
    real_context = node_module.tls_context
    monkeypatch.setattr(node_module, "tls_context", lambda *a: contexts.append(1) or real_context(*a))
    kube = kube_api
    async with running(controllers(api_url=kube.url)) as state:
        await node_facts(state, "cp-1", "controlplane")
        await state.create(Resource.new(KubernetesCertsSpec(ca_cert=kube.ca.cert_pem.decode(),
                                                            admin_cert=kube.admin.cert_pem.decode(),
                                                            admin_key=kube.admin.key_pem.decode()),
                                        K8S_CERTS_ID, namespace=SECRETS_NS))
        await set_config(state, config("controlplane", "nodeLabels: {team: a}\n  nodeAnnotations: {kos.dev/note: hi}\n"
                                       "  nodeTaints: {dedicated: 'gpu:NoExecute'}"))
        got = await assert_resources(state, NODE_APPLY_STATUSES, ["cp-1"],
                                     lambda r: "not registered" in r.spec.error)
        assert not got["cp-1"].spec.applied
        register(kube, "cp-1")  # the kubelet registers; the next retry applies
        await assert_resources(state, NODE_APPLY_STATUSES, ["cp-1"], lambda r: r.spec.applied, timeout=15)
        assert contexts == [1]  # the retries kept one TLS context (same credentials)
        n = node(kube, "cp-1")
        assert n["metadata"]["labels"]["team"] == "a" and n["metadata"]["labels"][CONTROL_PLANE_LABEL] == ""
        assert n["metadata"]["annotations"]["kos.dev/note"] == "hi"
        assert {(t["key"], t.get("value", ""), t["effect"]) for t in n["spec"]["taints"]} == {
            ("dedicated", "gpu", "NoExecute"), (CONTROL_PLANE_TAINT, "", "NoSchedule")}

        # the config changes: what it no longer says is removed from the Node
        await set_config(state, config("controlplane", "nodeLabels: {team: b}",
                                       "allowSchedulingOnControlPlanes: true"))
        await assert_resources(state, NODE_APPLY_STATUSES, ["cp-1"],
                               lambda r: r.spec.applied and r.spec.taints == [] and r.spec.annotations == [])
        n = node(kube, "cp-1")
        assert n["metadata"]["labels"]["team"] == "b"
        assert "kos.dev/note" not in n["metadata"].get("annotations", {})
        assert not n["spec"].get("taints")


async def test_a_worker_applies_what_its_kubelet_identity_may(kube_api: KubeAPI, tmp_path: Path) -> None:
    kube = kube_api
    register(kube, "w-1")
    kubelet = kube.identity("system:node:w-1", ["system:nodes"])
    pem = tmp_path / "var/lib/kubelet/pki/kubelet-client-current.pem"
    pem.parent.mkdir(parents=True)
    pem.write_bytes(kubelet.cert_pem + kubelet.key_pem)
    async with running(controllers(root=str(tmp_path))) as state:
        await node_facts(state, "w-1", "worker")
        await state.create(Resource.new(KubernetesRootSpec(ca_cert=kube.ca.cert_pem.decode(), endpoint=kube.url),
                                        K8S_ROOT_ID, namespace=SECRETS_NS))
        await set_config(state, config("worker", "nodeLabels: {team: w, node-role.kubernetes.io/worker: ''}\n"
                                       "  nodeAnnotations: {kos.dev/note: from-kubelet}"))
        got = await assert_resources(state, NODE_APPLY_STATUSES, ["w-1"], lambda r: r.spec.applied, timeout=15)
        st = got["w-1"].spec
        assert st.identity == "kubelet" and "node-role.kubernetes.io/worker" in st.error
        n = node(kube, "w-1")
        assert n["metadata"]["labels"]["team"] == "w"
        assert "node-role.kubernetes.io/worker" not in n["metadata"]["labels"]
        assert n["metadata"]["annotations"]["kos.dev/note"] == "from-kubelet"
