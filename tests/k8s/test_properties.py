"""Properties of the rendering: a config change re-renders exactly the artefacts that depend
on it, rendering is deterministic, and every rendered object stays valid."""

from __future__ import annotations

import ipaddress

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.k8s import controlplane as cp
from kos.controllers.k8s import kubelet as kl
from kos.controllers.k8s import manifests as mf
from kos.controllers.k8s.validate import check_object, check_pod
from kos.resources.machineconfig.v1alpha1 import Config
from tests.k8s.material import ENDPOINT, TOKEN, material

SD = "/system/secrets/kubernetes"
COMPONENTS = {"apiServer": "kube-apiserver", "controllerManager": "kube-controller-manager",
              "scheduler": "kube-scheduler"}
SAFE_FLAGS = ["v", "profiling", "feature-gates", "tls-min-version"]


def artefacts(cfg: Config) -> dict[str, str]:
    """Everything the config renders into, by name (pods, kubelet config, manifests)."""
    m = material().control_plane()
    api, cm, sched = cp.configs_from_machine(cfg)
    out = {
        "kube-apiserver": cp.render_apiserver(api, m, secrets_dir=SD).pod_yaml(),
        "kube-controller-manager": cp.render_controller_manager(cm, m, secrets_dir=SD).pod_yaml(),
        "kube-scheduler": cp.render_scheduler(sched, m, secrets_dir=SD).pod_yaml(),
    }
    kc = kl.kubelet_config_from_machine(cfg)
    out["kubelet"] = yaml.safe_dump(kl.render_kubelet_configuration(kc, kl.KubeletPaths()))
    inp = mf.ManifestInputs(bootstrap_token=TOKEN, endpoint=ENDPOINT,
                            service_subnets=list(cfg.cluster.network.service_subnets or ["10.96.0.0/12"]),
                            pod_subnets=list(cfg.cluster.network.pod_subnets or ["10.244.0.0/16"]))
    for gid, spec in mf.render_manifests(inp).items():
        out[gid] = spec.objects
    return out


BASE = artefacts(Config())


def _set_args(cfg: Config, section: str, args: dict[str, str]) -> None:
    comp = {"apiServer": cfg.cluster.api_server, "controllerManager": cfg.cluster.controller_manager,
            "scheduler": cfg.cluster.scheduler}[section]
    comp.extra_args = args


@settings(max_examples=12, deadline=None)
@given(section=st.sampled_from(sorted(COMPONENTS)),
       args=st.dictionaries(st.sampled_from(SAFE_FLAGS), st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
                            min_size=1, max_size=3))
def test_component_extra_args_change_only_that_pod(section: str, args: dict[str, str]) -> None:
    cfg = Config()
    _set_args(cfg, section, args)
    after = artefacts(cfg)
    changed = {k for k in after if after[k] != BASE[k]}
    assert changed <= {COMPONENTS[section]}
    pod = yaml.safe_load(after[COMPONENTS[section]])
    for k, v in args.items():
        assert f"--{k}={v}" in pod["spec"]["containers"][0]["args"]


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=1, max_value=250), st.integers(min_value=12, max_value=24))
def test_service_subnet_changes_exactly_its_consumers(octet: int, prefix: int) -> None:
    net = ipaddress.ip_network(f"10.{octet}.0.0/{prefix}", strict=False)
    cfg = Config()
    cfg.cluster.network.service_subnets = [str(net)]
    after = artefacts(cfg)
    changed = {k for k in after if after[k] != BASE[k]}
    if str(net) == "10.96.0.0/12":
        assert not changed
        return
    # the apiserver (service range), controller-manager (service range), kubelet and CoreDNS (DNS IP)
    dns_moved = str(net.network_address + 10) != "10.96.0.10"  # 10.96.0.0/13 keeps the DNS IP
    also = {"kubelet", "11-coredns"} if dns_moved else set()
    assert changed == {"kube-apiserver", "kube-controller-manager"} | also
    svc = next(o for o in yaml.safe_load_all(after["11-coredns"]) if o["kind"] == "Service")
    assert svc["spec"]["clusterIP"] == str(net.network_address + 10)
    check_object(svc)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["flannel", "none"]), st.lists(st.sampled_from(["10.244.0.0/16", "10.32.0.0/12"]),
                                                     min_size=1, max_size=1))
def test_pod_subnets_and_cni(cni: str, pods: list[str]) -> None:
    inp = mf.ManifestInputs(bootstrap_token=TOKEN, endpoint=ENDPOINT, service_subnets=["10.96.0.0/12"],
                            pod_subnets=pods, cni=cni)
    specs = mf.render_manifests(inp)
    assert ("12-flannel" in specs) == (cni == "flannel")
    for s in specs.values():
        for o in yaml.safe_load_all(s.objects):
            check_object(o)


def test_rendering_is_deterministic_and_valid() -> None:
    again = artefacts(Config())
    assert again == BASE
    m = material().control_plane()
    _api, _cm, sched = cp.configs_from_machine(Config())
    r = cp.render_scheduler(sched, m, secrets_dir=SD)
    check_pod(r.pod, "kube-scheduler", files=r.files, secrets_dir=SD)
