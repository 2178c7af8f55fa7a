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


def test_a_cluster_without_workers_allows_scheduling_on_its_control_planes() -> None:
    import argparse

    from kos.apis.kosctl.commands.cluster import _generate, node_names

    def generated(workers: int, cp_patches: list[str]) -> dict[str, ConfigContainer]:
        args = argparse.Namespace(name="t", workers=workers, config_patch=[], config_patch_control_plane=cp_patches,
                                  config_patch_worker=[])
        names = node_names(1, workers)
        out, _, _ = _generate(args, names, [f"10.5.0.{i + 2}" for i in range(len(names))])
        return {n: ConfigContainer.load(text) for n, text in out.items()}

    alone = generated(0, [])["cp-1"]
    assert alone.config.cluster.allow_scheduling_on_control_planes is True
    assert registered_taints(alone) == []
    with_workers = generated(1, [])
    assert registered_taints(with_workers["cp-1"]) == [{"key": CONTROL_PLANE_TAINT, "effect": "NoSchedule"}]
    # the user's patch still wins
    forced = generated(0, ["cluster: {allowSchedulingOnControlPlanes: false}"])["cp-1"]
    assert registered_taints(forced) == [{"key": CONTROL_PLANE_TAINT, "effect": "NoSchedule"}]
