"""Golden files: the rendered static pods, KubeletConfiguration, kubelet flags and bootstrap
manifests for a fixed config. Pods reference key files by path and never embed material, so
their text is deterministic. An intended rendering change is reviewed by regenerating with
``KOS_UPDATE_GOLDEN=1 python3 -m pytest tests/k8s/test_golden.py`` and reading the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from kos.controllers.k8s import controlplane as cp
from kos.controllers.k8s import kubelet as kl
from kos.controllers.k8s import manifests as mf
from kos.resources.machineconfig.v1alpha1 import Config
from tests.k8s.material import ENDPOINT, TOKEN, material

GOLDEN = Path(__file__).parent / "golden"
SD = "/system/secrets/kubernetes"


def rendered() -> dict[str, str]:
    cfg = Config()
    cfg.cluster.cluster_name = "golden"
    cfg.cluster.control_plane.endpoint = ENDPOINT
    m = material().control_plane()
    api, cm, sched = cp.configs_from_machine(cfg, advertised_address="10.5.0.2")
    out = {
        "kube-apiserver.yaml": cp.render_apiserver(api, m, secrets_dir=SD).pod_yaml(),
        "kube-controller-manager.yaml": cp.render_controller_manager(cm, m, secrets_dir=SD).pod_yaml(),
        "kube-scheduler.yaml": cp.render_scheduler(sched, m, secrets_dir=SD).pod_yaml(),
    }
    kc = kl.kubelet_config_from_machine(cfg)
    out["kubelet-config.yaml"] = yaml.safe_dump(kl.render_kubelet_configuration(kc, kl.KubeletPaths()),
                                                sort_keys=False)
    out["kubelet-args.txt"] = "\n".join(kl.kubelet_args(kc, kl.KubeletPaths(), nodename="node-1",
                                                        node_ips=["10.5.0.2"])) + "\n"
    specs = mf.render_manifests(mf.ManifestInputs(bootstrap_token=TOKEN, endpoint=ENDPOINT,
                                                  service_subnets=["10.96.0.0/12"], pod_subnets=["10.244.0.0/16"]))
    for gid, spec in specs.items():
        out[f"manifest-{gid}.yaml"] = spec.objects
    return out


@pytest.mark.parametrize("name", sorted(rendered()))
def test_matches_golden(name: str) -> None:
    text = rendered()[name]
    path = GOLDEN / name
    if os.environ.get("KOS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: regenerate with KOS_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from {path}; if intended, regenerate with KOS_UPDATE_GOLDEN=1"


def test_no_stale_golden_files() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(rendered())
