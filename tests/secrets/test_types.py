"""The secrets resource types: names, namespace, sensitivity, YAML field names."""

from __future__ import annotations

from kos.resources import secrets
from kos.resources.core import REGISTRY, Sensitivity


def test_types_are_registered_sensitive_in_secrets_namespace() -> None:
    names = ["OSRootSecrets", "EtcdRootSecrets", "KubernetesRootSecrets", "CertSANs", "APICerts", "EtcdCerts",
             "KubernetesCerts"]
    for name in names:
        rd = REGISTRY.definition(f"{name}.secrets.kos.dev")
        assert rd is not None, name
        assert rd.default_namespace == secrets.NAMESPACE
        assert rd.sensitivity == Sensitivity.SENSITIVE


def test_yaml_names() -> None:
    spec = secrets.OSRootSpec(ca_cert="C", ca_key="K", cert_sans=["a"], token="t")
    assert spec.to_yaml() == {"caCert": "C", "caKey": "K", "certSANs": ["a"], "token": "t"}
    assert spec.can_issue
    assert not secrets.OSRootSpec(ca_cert="C").can_issue
