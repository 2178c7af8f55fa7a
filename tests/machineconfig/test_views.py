"""Merged views over v1alpha1 + typed documents: links, hostname precedence, resolvers,
static hosts, time servers."""

from __future__ import annotations

from kos.resources.machineconfig import ConfigContainer, views


def test_views_merge_both_sources(talos_style: str) -> None:
    c = ConfigContainer.load(talos_style + """\
---
apiVersion: v1alpha1
kind: LinkConfig
name: eth9
up: false
mtu: 9000
addresses: [{address: 192.168.9.2/24}]
routes: [{destination: 0.0.0.0/0, gateway: 192.168.9.1, metric: 50}]
---
apiVersion: v1alpha1
kind: StaticHostConfig
name: 10.5.0.9
hostnames: [nine]
""")
    ls = {link.name: link for link in views.links(c)}
    assert list(ls) == ["eth0", "br0", "eth9"]
    eth0 = ls["eth0"]
    assert eth0.addresses == ("10.5.0.2/24",) and eth0.mtu == 1500 and eth0.vip == "10.5.0.50"
    assert eth0.routes == (views.RouteView("", "10.5.0.1", "", 1024, 0),)
    assert eth0.source == "machine.network.interfaces[0]"
    assert ls["br0"].dhcp and ls["br0"].bridge_ports == ("eth1", "eth2")
    eth9 = ls["eth9"]
    assert not eth9.up and eth9.mtu == 9000 and eth9.routes[0].metric == 50 and eth9.source == "LinkConfig[eth9]"
    assert views.hostname(c) == views.HostnameView("cp-1", source="machine.network.hostname")
    assert views.nameservers(c) == ["1.1.1.1", "8.8.8.8"]
    assert views.search_domains(c) == ["example.org"]
    assert views.static_hosts(c) == [views.StaticHost("192.168.1.100", ("example", "example.domain.tld")),
                                     views.StaticHost("10.5.0.9", ("nine",))]
    assert views.time_servers(c) == ["time.cloudflare.com"]


def test_documents_take_precedence() -> None:
    c = ConfigContainer.load("""\
version: v1alpha1
machine:
  type: worker
  features: {stableHostname: true}
  time: {disabled: true}
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable
---
apiVersion: v1alpha1
kind: ResolverConfig
nameservers: [{address: 9.9.9.9}]
searchDomains: {domains: [corp.example]}
""")
    assert views.hostname(c) == views.HostnameView("", stable=True, source="HostnameConfig")
    assert views.nameservers(c) == ["9.9.9.9"] and views.search_domains(c) == ["corp.example"]
    assert views.time_servers(c) == []
    plain = ConfigContainer.load("version: v1alpha1\nmachine: {type: worker, features: {stableHostname: true}}\n")
    assert views.hostname(plain) == views.HostnameView("", stable=True, source="machine.features.stableHostname")
    assert views.links(plain) == []
