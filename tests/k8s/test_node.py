"""Nodename and node IP selection (pure functions behind the Nodename/NodeIP controllers)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.controllers.k8s.kubelet import KubeletRenderError
from kos.controllers.k8s.node import node_ips_for, nodename_for

ADDRS = ["10.5.0.2/24", "192.168.1.5/24", "fd00::2/64", "2001:db8::7/64"]


def test_nodename() -> None:
    assert nodename_for("Node-1", "Example.org", fqdn=False) == "node-1"
    assert nodename_for("Node-1", "Example.org", fqdn=True) == "node-1.example.org"
    assert nodename_for("n", "", fqdn=True) == "n"
    with pytest.raises(KubeletRenderError, match="hostname: empty"):
        nodename_for("", "x", fqdn=False)


def test_node_ips_valid_subnets() -> None:
    assert node_ips_for(ADDRS, []) == ["10.5.0.2", "fd00::2"]
    assert node_ips_for(ADDRS, ["192.168.0.0/16"]) == ["192.168.1.5"]
    assert node_ips_for(ADDRS, ["!10.0.0.0/8"]) == ["192.168.1.5", "fd00::2"]
    assert node_ips_for(ADDRS, ["0.0.0.0/0", "2001:db8::/32"]) == ["10.5.0.2", "2001:db8::7"]
    assert node_ips_for(ADDRS, ["172.16.0.0/12"]) == []
    with pytest.raises(ValueError, match="subnet filter 'nope'"):
        node_ips_for(ADDRS, ["nope"])


@given(st.lists(st.ip_addresses().map(lambda ip: f"{ip}/{ip.max_prefixlen}"), max_size=8),
       st.lists(st.sampled_from(["10.0.0.0/8", "!10.0.0.0/8", "::/0", "0.0.0.0/0", "!fd00::/8"]), max_size=3))
def test_node_ips_at_most_one_per_family_all_allowed(addrs: list[str], subnets: list[str]) -> None:
    got = node_ips_for(addrs, subnets)
    versions = [ipaddress.ip_address(a).version for a in got]
    assert versions == sorted(set(versions))  # IPv4 first, at most one of each
    for a in got:
        assert any(x.startswith(a + "/") for x in addrs)
        ip = ipaddress.ip_address(a)
        for s in subnets:
            net = ipaddress.ip_network(s.lstrip("!"))
            if s.startswith("!") and ip.version == net.version:
                assert ip not in net
