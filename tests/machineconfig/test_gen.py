"""Golden tests of gen config: the configs load strictly and validate; every CA and the
admin certificate chain correctly with the expected SANs/usages/roles; workers carry no CA
private keys; secrets bundles round-trip; a given bundle is reused; bad options fail."""

from __future__ import annotations

import base64

import pytest

from kos.resources import machineconfig as mc
from kos.resources import pki


def test_configs_load_and_validate(generated: mc.Generated) -> None:
    for c in (generated.controlplane, generated.worker):
        again = mc.ConfigContainer.load(c.to_yaml(), strict=True)
        assert again == c
        assert again.validate("metal") == []
        assert again.validate("cloud") == []
    cp, wk = generated.controlplane.config, generated.worker.config
    assert cp.machine.type == "controlplane" and wk.machine.type == "worker"
    assert cp.cluster.control_plane.endpoint == wk.cluster.control_plane.endpoint == "https://10.5.0.2:6443"
    assert cp.cluster.cluster_name == "demo"
    assert cp.machine.cert_sans == ["api.example.org", "192.0.2.10"]
    assert cp.cluster.api_server.cert_sans == ["10.5.0.2", "api.example.org", "192.0.2.10"]
    assert cp.machine.install.disk == "/dev/sda"
    assert cp.cluster.api_server.image == "registry.k8s.io/kube-apiserver:v1.32.13"
    # workers and control planes share the cluster identity and tokens
    for field in ("id", "secret", "token"):
        assert getattr(cp.cluster, field) == getattr(wk.cluster, field)
    assert cp.machine.token == wk.machine.token


def test_worker_has_no_ca_private_keys(generated: mc.Generated, bundle: mc.SecretsBundle) -> None:
    text = generated.worker.to_yaml()
    for key in (bundle.certs.os.key, bundle.certs.k8s.key, bundle.certs.etcd.key, bundle.certs.k8s_aggregator.key,
                bundle.certs.k8s_service_account.key, bundle.secrets.secretbox_encryption_secret):
        assert key not in text
    assert "PRIVATE KEY" not in base64_decoded_blobs(text)
    wk = generated.worker.config
    assert wk.machine.ca.crt == bundle.certs.os.crt and wk.cluster.ca.crt == bundle.certs.k8s.crt
    # the control plane does carry them
    cp = generated.controlplane.to_yaml()
    assert bundle.certs.os.key in cp and bundle.certs.etcd.key in cp


def base64_decoded_blobs(text: str) -> str:
    out = []
    for word in text.split():
        try:
            out.append(base64.b64decode(word, validate=True).decode(errors="replace"))
        except ValueError:
            continue
    return "\n".join(out)


def test_cas_are_real_and_keys_match(bundle: mc.SecretsBundle) -> None:
    for name, pair in (("os", bundle.certs.os), ("etcd", bundle.certs.etcd), ("k8s", bundle.certs.k8s),
                       ("k8saggregator", bundle.certs.k8s_aggregator)):
        ck = pair.to_pair()
        ck.check()
        assert pki.is_ca(ck.cert_pem), name
        pki.verify_chain(ck.cert_pem, ck.cert_pem)
    sa = pki.load_private_key(bundle.certs.k8s_service_account.pem())
    assert sa.public_key() is not None


def test_admin_client_certificate(generated: mc.Generated, bundle: mc.SecretsBundle) -> None:
    client = mc.ClientConfig.parse(generated.client.to_yaml())
    assert client.context == "demo"
    _, ctx = client.current()
    assert ctx.endpoints == ["10.5.0.2"]
    crt, key, ca = ctx.crt, ctx.key, ctx.ca
    assert ca == bundle.certs.os.to_pair().cert_pem
    pki.verify_chain(crt, ca)
    pki.CertificateAndKey(crt, key).check()
    assert pki.certificate_organizations(crt) == ("os:admin",)
    assert pki.certificate_extended_usages(crt) == {"client"}
    assert not pki.is_ca(crt)


def test_issued_server_cert_from_generated_ca(generated: mc.Generated) -> None:
    """What the secrets controllers will do: issue the node API cert from the config's OS CA."""
    os_ca = generated.controlplane.config.machine.ca.to_pair()
    cp = generated.controlplane.config
    leaf = pki.issue_certificate(os_ca, common_name="cp-1", dns_names=["cp-1", *cp.machine.cert_sans[:1]],
                                 ip_addresses=["10.5.0.2", cp.machine.cert_sans[1]], server=True)
    pki.verify_chain(leaf.cert_pem, generated.worker.config.machine.ca.to_pair().cert_pem)
    sans = pki.certificate_sans(leaf.cert_pem)
    assert "api.example.org" in sans and "192.0.2.10" in sans and "10.5.0.2" in sans
    assert pki.certificate_extended_usages(leaf.cert_pem) == {"server"}


def test_secrets_bundle_round_trip_and_reuse(bundle: mc.SecretsBundle) -> None:
    text = bundle.to_yaml()
    assert mc.SecretsBundle.load(text) == bundle
    for key in ("cluster:", "secrets:", "bootstraptoken:", "trustdinfo:", "k8saggregator:", "k8sserviceaccount:"):
        assert key in text
    g1 = mc.generate(mc.GenOptions("demo", "https://cp.example.org"), bundle)
    g2 = mc.generate(mc.GenOptions("demo", "https://cp.example.org"), mc.SecretsBundle.load(text))
    assert g1.controlplane == g2.controlplane and g1.worker == g2.worker
    assert g1.controlplane.config.cluster.control_plane.endpoint == "https://cp.example.org:6443"


def test_secrets_bundle_bad_input(bundle: mc.SecretsBundle) -> None:
    with pytest.raises(mc.ConfigErrors) as ei:
        mc.SecretsBundle.load("cluster: {id: x}\ncerts: {os: {crt: y}}\nextra: 1\n")
    paths = ei.value.paths
    assert paths[0] == "extra"
    assert "certs.os.key" in paths and "trustdinfo.token" in paths and "cluster.secret" in paths


def test_patches_in_generate(bundle: mc.SecretsBundle) -> None:
    common = mc.parse_patch("machine:\n  time:\n    servers: [pool.ntp.org]\n")
    cp_only = mc.parse_patch('[{"op": "add", "path": "/cluster/allowSchedulingOnControlPlanes", "value": true}]')
    wk_only = mc.parse_patch("machine:\n  install:\n    disk: /dev/vda\n")
    g = mc.generate(mc.GenOptions("demo", "10.5.0.2"), bundle, patches=[common], controlplane_patches=[cp_only],
                    worker_patches=[wk_only])
    assert g.controlplane.config.machine.time.servers == ["pool.ntp.org"] == g.worker.config.machine.time.servers
    assert g.controlplane.config.cluster.allow_scheduling_on_control_planes is True
    assert g.worker.config.cluster.allow_scheduling_on_control_planes is None
    assert g.worker.config.machine.install.disk == "/dev/vda"
    assert g.controlplane.config.machine.install.disk == "/dev/sda"
    with pytest.raises(mc.ConfigErrors, match=r"machine\.bogus: unknown field"):
        mc.generate(mc.GenOptions("demo", "10.5.0.2"), bundle, patches=[mc.parse_patch("machine: {bogus: 1}")])


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (mc.GenOptions("Demo", "10.5.0.2"), "cluster name: 'Demo' is invalid"),
        (mc.GenOptions("demo", ""), "endpoint: empty"),
        (mc.GenOptions("demo", "ftp://x"), "endpoint: 'ftp://x' is invalid, expected https://HOST"),
        (mc.GenOptions("demo", "https://x:99999"), "invalid port"),
        (mc.GenOptions("demo", "x", kubernetes_version="latest"), "kubernetes version: 'latest' is invalid"),
        (mc.GenOptions("demo", "x", install_disk="sda"), "install disk: 'sda' is invalid"),
    ],
)
def test_bad_options(bundle: mc.SecretsBundle, opts: mc.GenOptions, message: str) -> None:
    with pytest.raises(mc.GenerateError, match=message):
        mc.generate(opts, bundle)


def test_ipv6_endpoint() -> None:
    assert mc.normalize_endpoint("fd00::1") == "https://[fd00::1]:6443"
    assert mc.normalize_endpoint("10.5.0.2:7443") == "https://10.5.0.2:7443"
    assert mc.normalize_endpoint("https://[fd00::1]:7443") == "https://[fd00::1]:7443"


def test_kosconfig_readable_by_api_client(generated: mc.Generated) -> None:
    """The kosconfig gen config writes is what the API client library reads."""
    from kos.apis.client import ClientConfig as APIClientConfig

    parsed = APIClientConfig.parse(generated.client.to_yaml())
    ctx = parsed.contexts[parsed.context]
    assert parsed.context == "demo" and ctx.endpoints == ["10.5.0.2"]
    assert ctx.ca == generated.controlplane.config.machine.ca.to_pair().cert_pem
    pki.verify_chain(ctx.crt, ctx.ca)
    pki.CertificateAndKey(ctx.crt, ctx.key).check()
