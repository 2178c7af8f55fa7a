"""cluster.allowSchedulingOnControlPlanes: control planes register tainted unless it is true."""

from __future__ import annotations

import yaml

from kos.controllers.k8s.kubelet import (
    CONTROL_PLANE_TAINT,
    KubeletPaths,
    kubelet_config_from_machine,
    render_kubelet_configuration,
)
from kos.resources.machineconfig import ConfigContainer


def config(machine_type: str, cluster_extra: str = "", taints: str = "") -> ConfigContainer:
    return ConfigContainer.load(f"""
version: v1alpha1
machine:
  type: {machine_type}
  {taints}
cluster:
  controlPlane: {{endpoint: "https://10.5.0.2:6443"}}
  {cluster_extra}
""", strict=False)


def registered_taints(c: ConfigContainer) -> list[dict[str, str]]:
    conf = render_kubelet_configuration(kubelet_config_from_machine(c.config), KubeletPaths())
    return list(yaml.safe_load(yaml.safe_dump(conf)).get("registerWithTaints", []))


def test_control_planes_are_tainted_by_default() -> None:
    assert registered_taints(config("controlplane")) == [{"key": CONTROL_PLANE_TAINT, "effect": "NoSchedule"}]


def test_allow_scheduling_on_control_planes_removes_the_taint() -> None:
    assert registered_taints(config("controlplane", "allowSchedulingOnControlPlanes: true")) == []
    assert registered_taints(config("controlplane", "allowSchedulingOnMasters: true")) == []


def test_workers_get_only_their_own_taints() -> None:
    assert registered_taints(config("worker")) == []
    assert registered_taints(config("worker", taints="nodeTaints: {dedicated: 'gpu:NoExecute'}")) == [
        {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]
