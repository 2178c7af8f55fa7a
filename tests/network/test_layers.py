"""Layer builders and the kernel cmdline ``ip=`` parser (pure functions)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.network.cmdline import CmdlineError, CmdlineNetwork, parse_cmdline, parse_ip
from kos.controllers.network.interfaces import select_link
from kos.controllers.network.layers import (
    ConfiguredLink,
    LayerError,
    cmdline_layer,
    configuration_layer,
    default_layer,
    stable_hostname,
)
from kos.resources.network import ConfigLayer, filter_addresses


@settings(max_examples=200, deadline=None)
@given(
    st.ip_addresses(v=4),
    st.integers(1, 32),
    st.one_of(st.just(""), st.ip_addresses(v=4).map(str)),
    st.sampled_from(["", "node1", "node1.example.org"]),
    st.sampled_from(["", "eth0", "enp0s3"]),
    st.booleans(),
    st.lists(st.ip_addresses(v=4).map(str), max_size=2),
)
def test_ip_roundtrip(client: ipaddress.IPv4Address, prefix: int, gw: str, host: str, dev: str, dotted: bool,
                      dns: list[str]) -> None:
    mask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask) if dotted else str(prefix)
    fields = [str(client), "", gw, mask, host, dev, "off", *dns]
    net = parse_ip(":".join(fields))
    assert net.address == f"{client}/{prefix}"
    assert net.gateway == gw
    assert net.link_name == dev
    assert net.dns_servers == dns
    assert not net.dhcp
    assert f"{net.hostname}.{net.domainname}".strip(".") == host


@pytest.mark.parametrize("value", ["dhcp", "on", "any", ":::::eth1:dhcp", ""])
def test_ip_dhcp(value: str) -> None:
    assert parse_ip(value).dhcp


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("10.0.0.300::::::off", "client-ip"),
        ("10.0.0.2::x::::off", "gw-ip"),
        ("10.0.0.2:::33:::off", "netmask"),
        ("10.0.0.2:::255.0.255.0:::off", "netmask"),
        ("10.0.0.2::::bad_host!::off", "hostname"),
        ("10.0.0.2:::24::eth0:magic", "autoconf"),
        ("10.0.0.2:::24::a/b:off", "device"),
        ("1:2:3:4:5:6:7:8:9:10:11", "field count"),
    ],
)
def test_ip_errors_name_the_field(value: str, field: str) -> None:
    with pytest.raises(CmdlineError) as e:
        parse_ip(value)
    assert e.value.field == field
    assert field in str(e.value) and "expected" in str(e.value)


def test_cmdline_kos_hostname_wins_and_last_ip_wins() -> None:
    net = parse_cmdline("console=ttyS0 ip=dhcp ip=10.0.0.5:::24:h1:eth0:off kos.hostname=node7.lab quiet")
    assert net == CmdlineNetwork(address="10.0.0.5/24", hostname="node7", domainname="lab", link_name="eth0")


def test_cmdline_layer_uses_first_physical_link() -> None:
    layer = cmdline_layer(parse_cmdline("ip=10.0.0.5::10.0.0.1:24::::1.1.1.1"), ["eth1", "eth0"])
    items = {(k.type.split(".")[0], id): s for k, id, s in layer.items(ConfigLayer.CMDLINE)}
    assert ("AddressSpecs", "eth0/10.0.0.5/24") in items
    assert ("RouteSpecs", "254/inet4/10.0.0.1/default/1024") in items
    assert items[("ResolverSpecs", "resolvers")].dns_servers == ["1.1.1.1"]  # type: ignore[attr-defined]
    assert all(s.layer == ConfigLayer.CMDLINE for s in items.values())  # type: ignore[attr-defined]


def test_default_layer() -> None:
    layer = default_layer([("eth1", "aa:bb:cc:00:00:02"), ("eth0", "aa:bb:cc:00:00:01")])
    assert [link.name for link in layer.links] == ["lo", "eth0"]
    assert [(o.operator, o.link_name) for o in layer.operators] == [("dhcp4", "eth0")]
    assert layer.hostname is not None and layer.hostname.hostname == stable_hostname("aa:bb:cc:00:00:01")
    assert stable_hostname("x") == stable_hostname("x") != stable_hostname("y")
    quiet = default_layer([("eth0", "aa")], others_configure=True, machine_id="m1")
    assert quiet.operators == [] and quiet.hostname is not None and quiet.hostname.hostname == stable_hostname("m1")


def test_configuration_layer_errors_name_the_source() -> None:
    good = ConfiguredLink(name="eth0", source="machine.network.interfaces[0]", addresses=("10.0.0.2/24",),
                          routes=(("", "10.0.0.1", "", 0, 0),), mtu=1400, dhcp=True, vip="10.0.0.100",
                          bridge_ports=())
    layer = configuration_layer([good], hostname="n1.example", nameservers=["1.1.1.1"])
    assert layer.hostname is not None and (layer.hostname.hostname, layer.hostname.domainname) == ("n1", "example")
    assert [o.operator for o in layer.operators] == ["dhcp4", "vip"]
    cases = [
        (ConfiguredLink(name="eth0", source="s", addresses=("10.0.0.999/24",)), "s.addresses[0]"),
        (ConfiguredLink(name="eth0", source="s", mtu=10), "s.mtu"),
        (ConfiguredLink(name="eth0", source="s", routes=(("nope", "", "", 0, 0),)), "s.routes[0].network"),
        (ConfiguredLink(name="eth0", source="s", routes=(("", "gw", "", 0, 0),)), "s.routes[0].gateway"),
        (ConfiguredLink(name="eth0", source="s", vip="x"), "s.vip.ip"),
    ]
    for link, where in cases:
        with pytest.raises(LayerError) as e:
            configuration_layer([link])
        assert e.value.where == where


def test_filter_addresses() -> None:
    addrs = ["10.5.0.2/24", "192.168.1.2/24", "fd00::1/64", "10.6.0.2/16"]
    assert filter_addresses(addrs, [], []) == addrs
    assert filter_addresses(addrs, ["10.0.0.0/8"], []) == ["10.5.0.2/24", "10.6.0.2/16"]
    assert filter_addresses(addrs, ["10.0.0.0/8", "!10.5.0.0/16"], []) == ["10.6.0.2/16"]
    assert filter_addresses(addrs, [], ["10.0.0.0/8", "fd00::/8"]) == ["192.168.1.2/24"]
    with pytest.raises(ValueError, match=r"'10\.0\.0/33'"):
        filter_addresses(addrs, ["10.0.0/33"], [])


def test_device_selector() -> None:
    links = [("eth1", "02:00:00:00:00:02", True), ("eth0", "02:00:00:00:00:01", True), ("veth9", "02:aa:00:00:00:01",
                                                                                          False)]
    assert select_link("s", {"hardwareAddr": "02:00:00:*"}, links) == "eth0"
    assert select_link("s", {"physical": False}, links) == "veth9"
    assert select_link("s", {"hardwareAddr": "ff:*"}, links) is None
    with pytest.raises(LayerError) as e:
        select_link("machine.network.interfaces[0]", {"busPath": "0000:00:03.0"}, links)
    assert e.value.where == "machine.network.interfaces[0].deviceSelector.busPath"
    with pytest.raises(LayerError):
        configuration_layer([ConfiguredLink(name="e.0", source="v", kind="vlan", parent="e", vlan_id=5000)])


def test_cmdline_short_form_of_the_image() -> None:
    net = parse_cmdline("ip=dhcp kos.ip=10.5.0.2/24 kos.gw=10.5.0.1 kos.dns=10.5.0.53,1.1.1.1 kos.hostname=node-1")
    assert net == CmdlineNetwork(address="10.5.0.2/24", gateway="10.5.0.1", dns_servers=["10.5.0.53", "1.1.1.1"],
                                 hostname="node-1")
    for bad, field in (("kos.ip=10.5.0.2", "address"), ("kos.ip=10.5.0.2/24 kos.gw=x", "gateway"),
                       ("kos.ip=10.5.0.2/24 kos.dns=1.1.1.1,nope", "server")):
        with pytest.raises(CmdlineError) as e:
            parse_cmdline(bad)
        assert e.value.field == field
