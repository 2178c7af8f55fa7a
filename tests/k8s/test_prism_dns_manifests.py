"""The bootstrap manifests follow the node features, as on Talos: with KubePrism on, the
host-network components (kube-proxy, flannel) reach the API server through the node's load
balancer at 127.0.0.1:<port>; with ``forwardKubeDNSToHost``, CoreDNS forwards external names to
the host DNS cache at 169.254.116.108 instead of its resolv.conf."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import yaml

from kos.controllers.k8s import manifests as mf
from kos.controllers.k8s.applier import ManifestController, manifest_inputs
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.resources.config import ACTIVE_ID, MachineConfigSpec, MachineTypeSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import InMemoryState, Resource
from kos.resources.k8s import MANIFESTS
from kos.resources.machineconfig import ConfigContainer
from kos.resources.secrets import K8S_ROOT_ID, KubernetesRootSpec
from kos.resources.secrets import NAMESPACE as SECRETS_NS
from tests.k8s.material import ENDPOINT, TOKEN

ROOT = KubernetesRootSpec(bootstrap_token=TOKEN, endpoint=ENDPOINT, service_subnets=["10.96.0.0/12"],
                          pod_subnets=["10.244.0.0/16"], dns_domain="cluster.local")


def config(features: str = "", docs: str = "") -> ConfigContainer:
    return ConfigContainer.load(f"""\
version: v1alpha1
machine:
  type: controlplane
  features: {{{features}}}
cluster:
  controlPlane: {{endpoint: "{ENDPOINT}"}}
""" + docs, strict=False)


def rendered(c: ConfigContainer, *, forward: bool = False) -> dict[str, list[dict[str, Any]]]:
    assert c.v1alpha1 is not None
    specs = mf.render_manifests(manifest_inputs(c.v1alpha1, ROOT, forward_kube_dns_to_host=forward))
    return {k: list(yaml.safe_load_all(s.objects)) for k, s in specs.items() if s.objects}


def env_of(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    obj = next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def corefile_of(objs: list[dict[str, Any]]) -> str:
    return str(next(o for o in objs if o["kind"] == "ConfigMap")["data"]["Corefile"])


API = {"KUBERNETES_SERVICE_HOST": "10.5.0.2", "KUBERNETES_SERVICE_PORT": "6443"}


def _prism(port: int) -> dict[str, str]:
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}


@pytest.mark.parametrize(("features", "want"), [
    ("kubePrism: {enabled: true, port: 7445}", _prism(7445)),
    ("kubePrism: {enabled: true}", _prism(7445)),
    ("kubePrism: {enabled: true, port: 7999}", _prism(7999)),
    ("kubePrism: {enabled: false, port: 7445}", API),
    ("", API),
])
def test_kube_proxy_and_flannel_use_kubeprism_when_it_is_on(features: str, want: dict[str, str]) -> None:
    assert ENDPOINT == "https://10.5.0.2:6443"
    out = rendered(config(features))
    proxy = env_of(out["10-kube-proxy"], "DaemonSet", "kube-proxy")
    flannel = env_of(out["12-flannel"], "DaemonSet", "kube-flannel")
    for env in (proxy, flannel):
        assert {k: env[k] for k in want} == want


def test_coredns_forwards_to_the_host_dns_cache_with_forward_kube_dns_to_host() -> None:
    c = config("hostDNS: {enabled: true, forwardKubeDNSToHost: true}")
    assert "forward . 169.254.116.108 {" in corefile_of(rendered(c, forward=True)["11-coredns"])
    plain = corefile_of(rendered(c, forward=False)["11-coredns"])
    assert "forward . /etc/resolv.conf {" in plain and "169.254.116.108" not in plain


async def _manifests_for(c: str) -> dict[str, Any]:
    state = InMemoryState()
    await state.create(Resource.new(MachineConfigSpec(config=c), ACTIVE_ID, namespace=CONFIG_NS))
    await state.create(Resource.new(MachineTypeSpec(machine_type="controlplane"), "machine-type",
                                    namespace=CONFIG_NS))
    await state.create(Resource.new(ROOT, K8S_ROOT_ID, namespace=SECRETS_NS))
    runtime = Runtime(state, backoff_initial=0.01)
    runtime.register(ManifestController())
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        got = await assert_resources(state, MANIFESTS, ["11-coredns", "10-kube-proxy"])
        tg.cancel_scope.cancel()
    return got


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["features", "document"])
async def test_the_manifest_controller_reads_host_dns_from_either_place(where: str) -> None:
    base = f"""\
version: v1alpha1
machine:
  type: controlplane
  features: {{kubePrism: {{enabled: true, port: 7445}}{', hostDNS: {enabled: true, forwardKubeDNSToHost: true}'
                                                         if where == 'features' else ''}}}
cluster:
  controlPlane: {{endpoint: "{ENDPOINT}"}}
"""
    if where == "document":
        base += ("---\napiVersion: v1alpha1\nkind: ResolverConfig\n"
                 "hostDNS: {enabled: true, forwardKubeDNSToHost: true}\n")
    got = await _manifests_for(base)
    assert "forward . 169.254.116.108 {" in got["11-coredns"].spec.objects
    proxy = list(yaml.safe_load_all(got["10-kube-proxy"].spec.objects))
    assert env_of(proxy, "DaemonSet", "kube-proxy")["KUBERNETES_SERVICE_PORT"] == "7445"


def test_with_host_dns_pods_get_the_upstream_resolvers_not_127_0_0_53() -> None:
    from kos.controllers.k8s import kubelet as kl

    paths = kl.KubeletPaths()
    c = config("hostDNS: {enabled: true}")
    assert c.v1alpha1 is not None
    spec = kl.kubelet_config_from_machine(c.v1alpha1)
    assert "resolvConf" not in kl.render_kubelet_configuration(spec, paths)  # the kubelet's default
    spec.host_dns = True
    assert kl.render_kubelet_configuration(spec, paths)["resolvConf"] == "/etc/resolv.conf.upstream"


@pytest.mark.parametrize(("features", "server"), [
    ("kubePrism: {enabled: true, port: 7445}", "https://127.0.0.1:7445"),
    ("kubePrism: {enabled: true}", "https://127.0.0.1:7445"),
    ("kubePrism: {enabled: true, port: 7999}", "https://127.0.0.1:7999"),
    ("kubePrism: {enabled: false, port: 7445}", ENDPOINT),
    ("", ENDPOINT),
])
def test_the_kubelet_reaches_the_api_server_through_kubeprism_when_it_is_on(features: str, server: str) -> None:
    from kos.controllers.k8s import kubelet as kl
    from kos.resources.pki import check_kubeconfig
    from tests.k8s.material import material

    c = config(features)
    assert c.v1alpha1 is not None
    spec = kl.kubelet_config_from_machine(c.v1alpha1)
    spec.api_server = kl.kube_prism_url(c.v1alpha1)
    ca = material().k8s_ca.cert_pem.decode()
    out = kl.render_kubelet_spec(spec, nodename="n1", node_ips=["10.5.0.2"], endpoint=spec.api_server or ENDPOINT,
                                 ca_pem=ca, bootstrap_token=TOKEN, paths=kl.KubeletPaths())
    assert check_kubeconfig(out.bootstrap_kubeconfig, ca).server == server
