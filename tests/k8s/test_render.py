"""Rendering of the control plane, kubelet and bootstrap manifests, checked structurally:
official client models, known flags, volume pairing, and the certificates each file holds
(chain to the right CA, CN/O, usages, SANs)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
import yaml

from kos.controllers.k8s import controlplane as cp
from kos.controllers.k8s import kubelet as kl
from kos.controllers.k8s import manifests as mf
from kos.controllers.k8s.validate import (
    ValidationError,
    check_args,
    check_kubelet_configuration,
    check_object,
    check_pod,
)
from kos.resources.machineconfig.v1alpha1 import Config
from kos.resources.pki import (
    certificate_common_name,
    certificate_extended_usages,
    certificate_organizations,
    certificate_sans,
    check_kubeconfig,
    load_private_key,
    verify_chain,
)
from tests.k8s.material import ENDPOINT, TOKEN, material

SD = "/system/secrets/kubernetes"


def render_all(cfg: Config | None = None) -> dict[str, cp.Rendered]:
    m = material().control_plane()
    api, cm, sched = cp.configs_from_machine(cfg or Config(), advertised_address="10.5.0.2")
    return {
        "kube-apiserver": cp.render_apiserver(api, m, secrets_dir=SD),
        "kube-controller-manager": cp.render_controller_manager(cm, m, secrets_dir=SD),
        "kube-scheduler": cp.render_scheduler(sched, m, secrets_dir=SD),
    }


def flags(r: cp.Rendered) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in r.pod["spec"]["containers"][0]["args"])


def test_static_pods_are_valid_pods_with_known_flags_and_paired_volumes() -> None:
    for cid, r in render_all().items():
        check_pod(r.pod, cid, files=r.files, secrets_dir=SD)
        model = check_object(r.pod)
        assert type(model).__name__ == "V1Pod"
        assert model.spec.host_network is True
        assert model.metadata.namespace == "kube-system"


def test_apiserver_flags_carry_etcd_certs_encryption_audit_and_aggregator() -> None:
    f = flags(render_all()["kube-apiserver"])
    d = f"{SD}/kube-apiserver"
    assert f["etcd-servers"] == "https://localhost:2379"
    assert (f["etcd-cafile"], f["etcd-certfile"], f["etcd-keyfile"]) == (
        f"{d}/etcd-ca.crt", f"{d}/etcd-client.crt", f"{d}/etcd-client.key")
    assert f["service-cluster-ip-range"] == "10.96.0.0/12"
    assert f["encryption-provider-config"] == f"{d}/encryptionconfig.yaml"
    assert f["audit-policy-file"] == f"{d}/auditpolicy.yaml"
    assert f["enable-admission-plugins"] == "NodeRestriction"
    assert f["authorization-mode"] == "Node,RBAC"
    assert f["enable-bootstrap-token-auth"] == "true"
    assert f["service-account-key-file"].endswith("service-account.pub")
    assert f["service-account-signing-key-file"].endswith("service-account.key")
    assert f["requestheader-client-ca-file"].endswith("front-proxy-ca.crt")
    assert f["requestheader-allowed-names"] == "front-proxy-client"
    assert f["kubelet-client-certificate"].endswith("apiserver-kubelet-client.crt")
    assert f["advertise-address"] == "10.5.0.2"


def test_controller_manager_and_scheduler_flags() -> None:
    r = render_all()
    f = flags(r["kube-controller-manager"])
    assert f["cluster-cidr"] == "10.244.0.0/16" and f["allocate-node-cidrs"] == "true"
    assert f["leader-elect"] == "true" and f["use-service-account-credentials"] == "true"
    assert f["cluster-signing-key-file"].endswith("kube-controller-manager/ca.key")
    s = flags(r["kube-scheduler"])
    assert s["leader-elect"] == "true" and s["kubeconfig"] == f"{SD}/kube-scheduler/kubeconfig"


def test_files_hold_certificates_that_chain_to_the_right_ca() -> None:
    mat = material()
    ca = mat.k8s_ca.cert_pem
    files = render_all()["kube-apiserver"].files
    g = lambda name: files[f"kube-apiserver/{name}"].encode()  # noqa: E731
    verify_chain(g("apiserver.crt"), ca)
    assert "server" in certificate_extended_usages(g("apiserver.crt"))
    sans = certificate_sans(g("apiserver.crt"))
    assert "kubernetes.default.svc" in sans.dns_names
    assert "10.96.0.1" in sans  # the first service IP: in-cluster clients
    verify_chain(g("apiserver-kubelet-client.crt"), ca)
    assert certificate_organizations(g("apiserver-kubelet-client.crt")) == ("system:masters",)
    verify_chain(g("front-proxy-client.crt"), g("front-proxy-ca.crt"))
    assert certificate_common_name(g("front-proxy-client.crt")) == "front-proxy-client"
    verify_chain(g("etcd-client.crt"), g("etcd-ca.crt"))
    assert "client" in certificate_extended_usages(g("etcd-client.crt"))
    pub = load_private_key(g("service-account.key")).public_key()
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    assert load_pem_public_key(g("service-account.pub")) == pub
    for key in ("apiserver.key", "etcd-client.key", "front-proxy-client.key", "service-account.key"):
        assert cp.is_secret_file(f"kube-apiserver/{key}")


def test_component_kubeconfigs_load_and_chain_with_the_right_identity() -> None:
    r = render_all()
    ca = material().k8s_ca.cert_pem.decode()
    info = check_kubeconfig(r["kube-controller-manager"].files["kube-controller-manager/kubeconfig"], ca,
                            expect_cn="system:kube-controller-manager")
    assert info.server == "https://localhost:6443"
    check_kubeconfig(r["kube-scheduler"].files["kube-scheduler/kubeconfig"], ca, expect_cn="system:kube-scheduler")
    # and the official client library loads them
    from kubernetes.config.kube_config import KubeConfigLoader

    loader = KubeConfigLoader(yaml.safe_load(r["kube-scheduler"].files["kube-scheduler/kubeconfig"]))
    assert loader.current_context["context"]["user"] == "system:kube-scheduler"


def test_encryption_config_is_secretbox_with_a_32_byte_key() -> None:
    text = render_all()["kube-apiserver"].files["kube-apiserver/encryptionconfig.yaml"]
    doc = yaml.safe_load(text)
    assert doc["kind"] == "EncryptionConfiguration"
    key = doc["resources"][0]["providers"][0]["secretbox"]["keys"][0]["secret"]
    assert len(base64.b64decode(key)) == 32
    with pytest.raises(cp.ControlPlaneRenderError, match="secretboxEncryptionSecret: decodes to 16 bytes"):
        cp.encryption_config(base64.b64encode(b"x" * 16).decode())


def test_extra_args_merge_and_protected_flags_are_refused() -> None:
    cfg = Config()
    cfg.cluster.api_server.extra_args = {"audit-log-maxage": "7", "feature-gates": "Foo=true"}
    f = flags(render_all(cfg)["kube-apiserver"])
    assert f["audit-log-maxage"] == "7" and f["feature-gates"] == "Foo=true"
    cfg.cluster.api_server.extra_args = {"etcd-certfile": "/tmp/x.crt"}
    with pytest.raises(cp.ControlPlaneRenderError, match=r"cluster.apiServer.extraArgs.etcd-certfile: '/tmp/x.crt'"):
        render_all(cfg)


def test_validation_catches_unknown_flags_fields_and_unpaired_volumes() -> None:
    cfg = Config()
    cfg.cluster.scheduler.extra_args = {"leader-elekt": "true"}
    r = render_all(cfg)["kube-scheduler"]
    with pytest.raises(ValidationError, match=r"unknown flags.*--leader-elekt"):
        check_pod(r.pod, "kube-scheduler", files=r.files, secrets_dir=SD)
    good = render_all()["kube-scheduler"]
    bad = yaml.safe_load(good.pod_yaml())
    bad["spec"]["hostNetwrok"] = True
    with pytest.raises(ValidationError, match=r"spec.hostNetwrok: unknown field of V1PodSpec"):
        check_object(bad)
    bad = yaml.safe_load(good.pod_yaml())
    bad["spec"]["containers"][0]["volumeMounts"][0]["name"] = "nope"
    with pytest.raises(ValidationError, match="volumeMount 'nope' has no volume"):
        check_pod(bad, "kube-scheduler", files=good.files, secrets_dir=SD)
    bad = yaml.safe_load(good.pod_yaml())
    bad["spec"]["containers"][0]["ports"][0]["containerPort"] = "https"
    with pytest.raises(ValidationError, match="containerPort: expected int"):
        check_object(bad)
    with pytest.raises(ValidationError, match="not a known Kubernetes type"):
        check_object({"apiVersion": "v1", "kind": "Pdo", "metadata": {"name": "x"}})


def test_missing_material_is_named() -> None:
    m = dataclasses.replace(material().control_plane(), etcd_client_key="")
    api, _, _ = cp.configs_from_machine(Config())
    with pytest.raises(cp.ControlPlaneRenderError, match="certificate material missing: etcd_client_key"):
        cp.render_apiserver(api, m, secrets_dir=SD)


def test_pods_never_embed_key_material() -> None:
    m = material().control_plane()
    secrets = [m.ca_key, m.apiserver_key, m.service_account_private_key, m.etcd_client_key, m.secretbox_secret,
               m.controller_manager_key, m.scheduler_key, m.front_proxy_client_key]
    for r in render_all().values():
        text = r.pod_yaml()
        assert not any(s.strip()[40:80] in text for s in secrets)
        assert "PRIVATE KEY" not in text


# --- kubelet -----------------------------------------------------------------------------


def kubelet_spec(cfg: Config | None = None, **kw: object) -> tuple[kl.KubeletConfigSpec, object]:
    kc = kl.kubelet_config_from_machine(cfg or Config())
    args = {"nodename": "node-1", "node_ips": ["10.5.0.2"], "endpoint": ENDPOINT,
            "ca_pem": material().k8s_ca.cert_pem.decode(), "bootstrap_token": TOKEN, "paths": kl.KubeletPaths()}
    args.update(kw)
    return kc, kl.render_kubelet_spec(kc, **args)  # type: ignore[arg-type]


def test_kubelet_configuration_is_complete_and_valid() -> None:
    _, spec = kubelet_spec()
    conf = yaml.safe_load(spec.config)  # type: ignore[attr-defined]
    check_kubelet_configuration(conf)
    assert conf["cgroupDriver"] == "cgroupfs"
    assert conf["clusterDNS"] == ["10.96.0.10"] and conf["clusterDomain"] == "cluster.local"
    assert conf["staticPodPath"] == "/etc/kubernetes/manifests"
    assert conf["rotateCertificates"] is True and conf["serverTLSBootstrap"] is True
    assert conf["authentication"]["webhook"]["enabled"] is True
    assert conf["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["evictionHard"]["memory.available"] == "100Mi" and conf["systemReserved"]["memory"] == "192Mi"


def test_kubelet_bootstrap_kubeconfig_uses_the_token() -> None:
    _, spec = kubelet_spec()
    info = check_kubeconfig(spec.bootstrap_kubeconfig, material().k8s_ca.cert_pem.decode())  # type: ignore[attr-defined]
    assert info.token == TOKEN and info.server == ENDPOINT


def test_kubelet_args_extra_args_and_dual_stack_dns() -> None:
    cfg = Config()
    cfg.cluster.network.service_subnets = ["10.96.0.0/12", "fd00:10:96::/112"]
    cfg.cluster.network.dns_domain = "k.test"
    cfg.machine.kubelet.extra_args = {"v": "4", "--register-node": "false"}
    cfg.machine.kubelet.extra_config = {"maxPods": 50, "authentication": {"webhook": {"cacheTTL": "1m0s"}}}
    cfg.machine.node_labels = {"zone": "a"}
    _, spec = kubelet_spec(cfg, node_ips=["10.5.0.2", "fd00::2"])
    args = spec.args  # type: ignore[attr-defined]
    assert "--v=4" in args and "--register-node=false" in args and "--node-ip=10.5.0.2,fd00::2" in args
    assert "--node-labels=zone=a" in args and "--hostname-override=node-1" in args
    check_args("kubelet", args)
    with pytest.raises(ValidationError, match="unknown flags for Kubernetes kubelet: --registr-node"):
        check_args("kubelet", [*args, "--registr-node=false"])
    conf = yaml.safe_load(spec.config)  # type: ignore[attr-defined]
    assert conf["clusterDNS"] == ["10.96.0.10", "fd00:10:96::a"] and conf["clusterDomain"] == "k.test"
    assert conf["maxPods"] == 50 and conf["authentication"]["webhook"] == {"enabled": True, "cacheTTL": "1m0s"}
    check_kubelet_configuration(conf)
    cfg.machine.kubelet.extra_args = {"kubeconfig": "/tmp/other"}
    with pytest.raises(kl.KubeletRenderError, match=r"machine.kubelet.extraArgs.kubeconfig: ./tmp/other. is refused"):
        kubelet_spec(cfg)


def test_kubelet_extra_config_unknown_field_is_caught() -> None:
    cfg = Config()
    cfg.machine.kubelet.extra_config = {"maxPodz": 50}
    _, spec = kubelet_spec(cfg)
    with pytest.raises(ValidationError, match="unknown fields: maxPodz"):
        check_kubelet_configuration(yaml.safe_load(spec.config))  # type: ignore[attr-defined]


# --- bootstrap manifests -------------------------------------------------------------------


def inputs(**kw: object) -> mf.ManifestInputs:
    base: dict[str, object] = {"bootstrap_token": TOKEN, "endpoint": ENDPOINT, "service_subnets": ["10.96.0.0/12"],
                               "pod_subnets": ["10.244.0.0/16"]}
    base.update(kw)
    return mf.ManifestInputs(**base)  # type: ignore[arg-type]


def objects(specs: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    return {k: list(yaml.safe_load_all(s.objects)) for k, s in specs.items() if s.objects}  # type: ignore[attr-defined]


def test_bootstrap_manifests_are_valid_objects() -> None:
    specs = mf.render_manifests(inputs())
    assert list(specs) == ["00-bootstrap-token", "01-csr-rbac", "10-kube-proxy", "11-coredns", "12-flannel"]
    for gid, objs in objects(specs).items():
        assert specs[gid].count == len(objs)
        for o in objs:
            check_object(o)
    secret = objects(specs)["00-bootstrap-token"][0]
    assert secret["metadata"]["name"] == "bootstrap-token-abcdef"  # type: ignore[index]
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    svc = next(o for o in objects(specs)["11-coredns"] if o["kind"] == "Service")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"  # type: ignore[index]
    proxy = next(o for o in objects(specs)["10-kube-proxy"] if o["kind"] == "DaemonSet")
    check_args("kube-proxy", proxy["spec"]["template"]["spec"]["containers"][0]["command"][1:])  # type: ignore[index]
    cm = next(o for o in objects(specs)["12-flannel"] if o["kind"] == "ConfigMap")
    assert '"Network": "10.244.0.0/16"' in cm["data"]["net-conf.json"]  # type: ignore[index]


def test_cni_none_custom_and_extra_inline_manifests() -> None:
    assert "12-flannel" not in mf.render_manifests(inputs(cni="none"))
    specs = mf.render_manifests(inputs(cni="custom", cni_urls=["https://example.org/cni.yaml"],
                                       extra_manifests=["https://example.org/x.yaml"],
                                       inline_manifests=[mf.InlineManifest("ns", "apiVersion: v1\nkind: Namespace\n"
                                                                                 "metadata:\n  name: team-a\n")]))
    assert specs["13-cni-custom-0"].url == "https://example.org/cni.yaml"
    assert specs["70-extra-0"].url == "https://example.org/x.yaml"
    check_object(objects(specs)["60-inline-ns"][0])
    with pytest.raises(mf.ManifestRenderError, match=r"cluster.inlineManifests\[0\].contents: document 0"):
        mf.render_manifests(inputs(inline_manifests=[mf.InlineManifest("x", "just: text")]))
    with pytest.raises(mf.ManifestRenderError, match=r"cluster.network.cni.name: .calico. is invalid"):
        mf.render_manifests(inputs(cni="calico"))
    with pytest.raises(mf.ManifestRenderError, match=r"cluster.token: invalid"):
        mf.render_manifests(inputs(bootstrap_token="nope"))


def test_dual_stack_coredns_service() -> None:
    specs = mf.render_manifests(inputs(service_subnets=["10.96.0.0/12", "fd00:10:96::/112"],
                                       pod_subnets=["10.244.0.0/16", "fd00:10:244::/56"]))
    svc = next(o for o in objects(specs)["11-coredns"] if o["kind"] == "Service")
    assert svc["spec"]["clusterIPs"] == ["10.96.0.10", "fd00:10:96::a"]  # type: ignore[index]
    assert svc["spec"]["ipFamilyPolicy"] == "RequireDualStack"  # type: ignore[index]
    check_object(svc)
