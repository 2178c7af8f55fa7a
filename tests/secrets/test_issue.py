"""Issuing and freshness (pure): renewal points, SAN/CA checks, bad config secrets."""

from __future__ import annotations

import datetime
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.secrets import issue
from kos.controllers.secrets.root import root_secrets
from kos.resources import secrets as s
from kos.resources.machineconfig import ConfigContainer
from kos.resources.pki import CertificateAndKey, certificate_validity, generate_ca, issue_certificate

from .fixtures import configs

UTC = datetime.UTC


@functools.cache
def ca() -> CertificateAndKey:
    return generate_ca("test")


@functools.cache
def other_ca() -> CertificateAndKey:
    return generate_ca("other")


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=10, max_value=10**8), st.floats(min_value=0.05, max_value=0.95))
def test_renewal_point_is_inside_the_lifetime(ttl_s: int, fraction: float) -> None:
    pair = issue_certificate(ca(), common_name="n", server=True, ttl=datetime.timedelta(seconds=ttl_s))
    cert = pair.cert_pem.decode()
    nb, na = certificate_validity(pair.cert_pem)
    at = issue.renew_at(cert, fraction)
    assert nb < at < na
    assert issue.is_current(cert, ca().cert_pem.decode(), fraction=fraction, now=at - datetime.timedelta(seconds=1))
    assert not issue.is_current(cert, ca().cert_pem.decode(), fraction=fraction, now=at)


def test_is_current_checks_ca_and_sans() -> None:
    pair = issue_certificate(ca(), common_name="n", dns_names=["a", "b"], ip_addresses=["10.0.0.1"], server=True)
    cert, ca_pem = pair.cert_pem.decode(), ca().cert_pem.decode()
    assert issue.is_current(cert, ca_pem, dns_names=["b", "a"], ips=["10.0.0.1"])
    assert not issue.is_current(cert, ca_pem, dns_names=["a"], ips=["10.0.0.1"])
    assert not issue.is_current(cert, ca_pem, dns_names=["a", "b"], ips=["10.0.0.2"])
    assert not issue.is_current(cert, other_ca().cert_pem.decode())
    assert not issue.is_current("", ca_pem)
    assert not issue.is_current("garbage", ca_pem)


def test_api_certs_need_the_ca_key_and_carry_the_sans() -> None:
    root = s.OSRootSpec(ca_cert=ca().cert_pem.decode(), ca_key=ca().key_pem.decode())
    san = s.CertSANSpec(dns_names=["n1", "n1.lab"], ips=["10.1.1.1"], fqdn="n1.lab")
    spec = issue.api_certs(root, san, ttl=datetime.timedelta(hours=1))
    assert issue.is_current(spec.server_cert, root.ca_cert, dns_names=san.dns_names, ips=san.ips)
    assert issue.next_renewal([spec.server_cert, spec.client_cert]) is not None
    assert issue.next_renewal(["", ""]) is None


def test_bad_secrets_in_config_name_the_path() -> None:
    cp, _ = configs()
    c = ConfigContainer.load(cp.to_yaml())
    c.config.cluster.etcd.ca.crt = "!!not base64!!"
    with pytest.raises(ValueError, match=r"cluster\.etcd\.ca\.crt: not a base64-encoded PEM"):
        root_secrets(c.config)
