"""Pure pieces: DHCPv4 wire format and lease mapping, NodeAddresses, /etc renderers, ARP frames."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.network.nodeaddress import node_addresses
from kos.controllers.network.operators import dhcp_layer
from kos.platform.network.arp import gratuitous_arp_frame, parse_arp
from kos.platform.network.dhcp4 import (
    ACK,
    OPT_CLASSLESS,
    OPT_DNS,
    OPT_HOSTNAME,
    OPT_LEASE_TIME,
    OPT_MSG_TYPE,
    OPT_ROUTER,
    OPT_SEARCH,
    OPT_SERVER_ID,
    OPT_SUBNET,
    DHCPError,
    Lease,
    Message,
    decode_classless_routes,
    decode_domain_search,
)
from kos.platform.network.etcfiles import render_hosts, render_resolv_conf

MACS = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
IPS = st.ip_addresses(v=4).map(str)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), MACS, IPS, IPS,
       st.dictionaries(st.integers(1, 254).filter(lambda c: c != 53), st.binary(max_size=600), max_size=6),
       st.sampled_from([1, 2, 3, 5]))
def test_message_roundtrip(xid: int, mac: str, ciaddr: str, yiaddr: str, options: dict[int, bytes],
                           kind: int) -> None:
    options = {k: v for k, v in options.items() if v}
    options[OPT_MSG_TYPE] = bytes([kind])
    m = Message(op=2, xid=xid, chaddr=mac, ciaddr=ciaddr, yiaddr=yiaddr, options=options)
    back = Message.decode(m.encode())
    assert back == m
    assert back.type == kind


def test_decode_rejects_garbage() -> None:
    with pytest.raises(DHCPError, match="too short"):
        Message.decode(b"\x02" * 100)
    with pytest.raises(DHCPError, match="magic"):
        Message.decode(b"\x02" * 300)
    data = bytearray(Message(options={OPT_MSG_TYPE: b"\x05"}).encode())
    data[241] = 200  # the length of option 53 runs beyond the end
    with pytest.raises(DHCPError, match="overruns"):
        Message.decode(bytes(data[:250]))


def test_classless_routes_and_search_domains() -> None:
    # 10.0.0.0/8 via 10.5.0.1, default via 10.5.0.254, 192.168.1.0/24 on-link
    raw = bytes([8, 10, 10, 5, 0, 1, 0, 10, 5, 0, 254, 24, 192, 168, 1, 0, 0, 0, 0])
    assert decode_classless_routes(raw) == [("10.0.0.0/8", "10.5.0.1"), ("0.0.0.0/0", "10.5.0.254"),
                                            ("192.168.1.0/24", "0.0.0.0")]
    with pytest.raises(DHCPError):
        decode_classless_routes(bytes([33, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    # "lab.example" then "x.example" compressed against the first name's "example"
    raw = b"\x03lab\x07example\x00\x01x\xc0\x04"
    assert decode_domain_search(raw) == ["lab.example", "x.example"]
    with pytest.raises(DHCPError):
        decode_domain_search(b"\x01x\xc0\x00")  # a pointer loop


def _ack(**extra: bytes) -> Message:
    opts = {
        OPT_MSG_TYPE: bytes([ACK]), OPT_SUBNET: socket.inet_aton("255.255.255.0"),
        OPT_ROUTER: socket.inet_aton("10.6.0.1"), OPT_DNS: socket.inet_aton("10.6.0.53") + socket.inet_aton("1.1.1.1"),
        OPT_LEASE_TIME: struct.pack("!I", 600), OPT_SERVER_ID: socket.inet_aton("10.6.0.1"),
        OPT_HOSTNAME: b"node7.lab", OPT_SEARCH: b"\x03lab\x00",
    }
    opts.update({int(k[1:]): v for k, v in extra.items()})
    return Message(op=2, yiaddr="10.6.0.57", options=opts)


def test_lease_and_dhcp_layer() -> None:
    lease = Lease.from_ack(_ack())
    assert (lease.address, lease.server, lease.lease_time, lease.renewal_time, lease.rebinding_time) == (
        "10.6.0.57/24", "10.6.0.1", 600, 300, 525)
    layer = dhcp_layer(lease, "eth0", 512)
    assert [a.address for a in layer.addresses] == ["10.6.0.57/24"]
    (route,) = layer.routes
    assert (route.destination, route.gateway, route.priority, route.source, route.protocol) == (
        "", "10.6.0.1", 512, "10.6.0.57", "dhcp")
    assert layer.resolvers is not None and layer.resolvers.dns_servers == ["10.6.0.53", "1.1.1.1"]
    assert layer.resolvers.search_domains == ["lab"]
    assert layer.hostname is not None and (layer.hostname.hostname, layer.hostname.domainname) == ("node7", "lab")
    # classless routes win over the router option (RFC 3442)
    classless = Lease.from_ack(_ack(o121=bytes([16, 172, 16, 10, 6, 0, 9, 0, 10, 6, 0, 1])))
    routes = {(r.destination, r.gateway) for r in dhcp_layer(classless, "eth0", 1024).routes}
    assert routes == {("172.16.0.0/16", "10.6.0.9"), ("", "10.6.0.1")}
    assert OPT_CLASSLESS == 121


CIDRS = st.tuples(st.ip_addresses(v=4), st.integers(8, 32)).map(lambda t: f"{t[0]}/{t[1]}")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(CIDRS, st.sampled_from(["global", "link", "host"]),
                          st.sampled_from(["eth0", "lo"])), max_size=8),
       st.lists(IPS, max_size=2))
def test_node_addresses(statuses: list[tuple[str, str, str]], vips: list[str]) -> None:
    out = node_addresses(statuses, vips, ["192.0.2.1/32"])
    for cidr in out["current"]:
        assert any(c == cidr and s == "global" and link != "lo" for c, s, link in statuses)
    assert set(out["routed"]) <= set(out["current"])
    assert not {c.split("/")[0] for c in out["routed"]} & set(vips)
    assert out["default"] == out["routed"][:1] or (not out["routed"] and out["default"] == out["current"][:1])
    assert set(out["accumulative"]) == set(out["current"]) | {"192.0.2.1/32"}
    assert node_addresses(list(reversed(statuses)), vips, ["192.0.2.1/32"]) == out


def test_etc_renderers() -> None:
    resolv = render_resolv_conf(["10.0.0.53", "1.1.1.1", "8.8.8.8", "9.9.9.9"], ["a.example", "b.example"])
    assert resolv.splitlines()[1:] == ["nameserver 10.0.0.53", "nameserver 1.1.1.1", "nameserver 8.8.8.8",
                                       "search a.example b.example"]
    hosts = render_hosts("n1", "lab.example", "10.5.0.2", [("10.5.0.9", ("nine",))])
    assert "10.5.0.2\tn1.lab.example n1\n" in hosts and hosts.endswith("10.5.0.9\tnine\n")
    assert "127.0.1.1\tn1\n" in render_hosts("n1", "", "", [])


def test_gratuitous_arp_frame() -> None:
    frame = gratuitous_arp_frame("02:00:00:00:00:01", "10.7.0.100")
    assert frame[:6] == b"\xff" * 6 and len(frame) == 42
    assert parse_arp(frame) == (1, "02:00:00:00:00:01", "10.7.0.100", "10.7.0.100")
    assert parse_arp(b"\x00" * 42) is None
