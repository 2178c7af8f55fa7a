"""Addresses a CNI gives the node (cni0, flannel.1: inside the pod subnet) are not the node's:
they never reach certificate SANs, so a CNI coming up re-issues nothing."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from kos.controllers.secrets.certsans import without_cluster_subnets

SUBNETS = ["10.244.0.0/16", "10.96.0.0/12", "fd00:10:244::/56"]


def test_cni_addresses_are_dropped() -> None:
    got = without_cluster_subnets(["10.5.0.2/24", "10.244.0.0/32", "10.244.0.1/24", "fd00:10:244::1/64",
                                   "2001:db8::2/64", "10.96.0.1"], SUBNETS)
    assert got == ["10.5.0.2/24", "2001:db8::2/64"]


@given(st.lists(st.ip_addresses(v=4).map(str), max_size=20))
def test_kept_exactly_the_addresses_outside_the_subnets(addrs: list[str]) -> None:
    nets = [ipaddress.ip_network(n) for n in SUBNETS if ":" not in n]
    want = [a for a in addrs if not any(ipaddress.ip_address(a) in n for n in nets)]
    assert without_cluster_subnets(addrs, SUBNETS) == want
