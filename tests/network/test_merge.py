"""The layer merge rules as properties (hypothesis): idempotent, input-order independent,
higher layer wins, removing a layer removes exactly its contribution."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.network.merge import merge_by_id, merge_links, merge_resolvers
from kos.resources.network import AddressSpecSpec, ConfigLayer, LinkSpecSpec, ResolverSpecSpec

LAYERS = list(ConfigLayer)
NAMES = st.sampled_from(["eth0", "eth1", "br0", "lo"])


@st.composite
def link_layers(draw: Any) -> list[tuple[str, LinkSpecSpec]]:
    """At most one spec per (layer, name), as in network-config."""
    out: list[tuple[str, LinkSpecSpec]] = []
    for layer in LAYERS:
        for name in draw(st.sets(NAMES, max_size=3)):
            out.append((name, LinkSpecSpec(
                name=name,
                layer=layer,
                up=draw(st.booleans()),
                mtu=draw(st.sampled_from([0, 1280, 1500, 9000])),
                kind=draw(st.sampled_from(["", "bridge"])),
                master=draw(st.sampled_from(["", "br0"])),
            )))
    return out


@st.composite
def address_layers(draw: Any) -> list[tuple[str, AddressSpecSpec]]:
    out: list[tuple[str, AddressSpecSpec]] = []
    for layer in LAYERS:
        for host in draw(st.sets(st.integers(1, 6), max_size=4)):
            addr = f"10.0.0.{host}/24"
            out.append((f"eth0/{addr}", AddressSpecSpec(
                address=addr, link_name="eth0", layer=layer,
                valid_lifetime=draw(st.sampled_from([0, 60])),
            )))
    return out


def _as_top_layer(merged: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for id, spec in merged.items():
        s = spec.copy()
        s.layer = ConfigLayer.CONFIGURATION
        out.append((id, s))
    return out


def _strip_layer(merged: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for id, spec in merged.items():
        s = spec.copy()
        s.layer = ConfigLayer.DEFAULT
        out[id] = s
    return out


@settings(max_examples=150, deadline=None)
@given(link_layers(), st.randoms())
def test_links_order_independent_and_idempotent(items: list[tuple[str, LinkSpecSpec]], rnd: Any) -> None:
    merged = merge_links(items)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert merge_links(shuffled) == merged
    assert _strip_layer(merge_links(_as_top_layer(merged))) == _strip_layer(merged)
    assert merge_links(items + items) == merged


@settings(max_examples=150, deadline=None)
@given(link_layers())
def test_links_field_from_highest_setting_layer(items: list[tuple[str, LinkSpecSpec]]) -> None:
    merged = merge_links(items)
    assert set(merged) == {name for name, _ in items}
    for name, m in merged.items():
        specs = sorted((s for n, s in items if n == name), key=lambda s: s.layer)
        for field in ("up", "mtu", "kind", "master"):
            setters = [s for s in specs if getattr(s, field) != getattr(LinkSpecSpec(), field)]
            want = getattr(setters[-1], field) if setters else getattr(LinkSpecSpec(), field)
            assert getattr(m, field) == want, (name, field)
        assert m.layer == specs[-1].layer


@settings(max_examples=150, deadline=None)
@given(link_layers(), st.sampled_from(LAYERS))
def test_links_removing_a_layer_removes_exactly_its_contribution(
    items: list[tuple[str, LinkSpecSpec]], removed: ConfigLayer
) -> None:
    before = merge_links(items)
    rest = [(n, s) for n, s in items if s.layer != removed]
    after = merge_links(rest)
    assert set(after) == {n for n, _ in rest}
    for name, b in before.items():
        if name not in after:
            assert all(s.layer == removed for n, s in items if n == name)
            continue
        for field in ("up", "mtu", "kind", "master"):
            setters = [s for n, s in items if n == name and getattr(s, field) != getattr(LinkSpecSpec(), field)]
            winner = max(setters, key=lambda s: s.layer) if setters else None
            if winner is None or winner.layer != removed:
                assert getattr(after[name], field) == getattr(b, field), (name, field)


@settings(max_examples=150, deadline=None)
@given(address_layers(), st.randoms(), st.sampled_from(LAYERS))
def test_addresses_union_higher_layer_wins(items: list[tuple[str, AddressSpecSpec]], rnd: Any,
                                           removed: ConfigLayer) -> None:
    merged = merge_by_id(items)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert merge_by_id(shuffled) == merged
    assert set(merged) == {id for id, _ in items}
    for id, m in merged.items():
        assert m.layer == max(s.layer for i, s in items if i == id)
    assert _strip_layer(merge_by_id(_as_top_layer(merged))) == _strip_layer(merged)
    after = merge_by_id([(i, s) for i, s in items if s.layer != removed])
    for id, b in merged.items():
        if b.layer != removed:
            assert after[id] == b
        elif id in after:
            assert after[id].layer < removed


def test_resolvers_choose_servers_and_domains_separately() -> None:
    items = [
        ("resolvers", ResolverSpecSpec(dns_servers=["10.0.0.53"], search_domains=["dhcp.example"],
                                       layer=ConfigLayer.OPERATOR)),
        ("resolvers", ResolverSpecSpec(dns_servers=["1.1.1.1"], layer=ConfigLayer.CONFIGURATION)),
        ("resolvers", ResolverSpecSpec(dns_servers=["8.8.8.8"], search_domains=["d.example"],
                                       layer=ConfigLayer.DEFAULT)),
    ]
    (m,) = merge_resolvers(items).values()
    assert m.dns_servers == ["1.1.1.1"]
    assert m.search_domains == ["dhcp.example"]
    assert m.layer == ConfigLayer.CONFIGURATION
    assert merge_resolvers(list(reversed(items))) == merge_resolvers(items)
