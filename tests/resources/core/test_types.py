"""Metadata, queries, definitions, spec encodings and YAML rendering."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.resources.core import (
    DynamicSpec,
    IDQuery,
    LabelOp,
    LabelQuery,
    LabelTerm,
    Metadata,
    Phase,
    Registry,
    Resource,
    ResourceDefinition,
    Spec,
    parse_number,
    parse_version,
    resource_type,
    resource_yaml,
    singular,
    spec_field,
    version_string,
)

# -- metadata --------------------------------------------------------------------------------


def test_metadata_equality_ignores_times_and_finalizer_order() -> None:
    a = Metadata("ns", "T.kos.dev", "x", version=1, finalizers=["f1", "f2"], created=1, updated=2)
    b = Metadata("ns", "T.kos.dev", "x", version=1, finalizers=["f2", "f1"], created=5, updated=6)
    assert a == b
    b.finalizers = ("f2", "f2")
    assert a != b
    c = a.copy()
    c.labels["k"] = "v"
    assert a != c and a.labels == {}


def test_owner_can_only_be_set_once() -> None:
    md = Metadata("ns", "T.kos.dev", "x")
    md.set_owner("a")
    md.set_owner("a")
    with pytest.raises(ValueError, match="already set"):
        md.set_owner("b")


def test_versions_and_phases_have_wire_forms() -> None:
    assert version_string(None) == "undefined" and parse_version("undefined") is None
    assert parse_version("17") == 17 and version_string(17) == "17"
    with pytest.raises(ValueError, match="invalid version"):
        parse_version("x")
    assert Phase.parse("tearingDown") is Phase.TEARING_DOWN and str(Phase.RUNNING) == "running"
    with pytest.raises(ValueError, match="unknown phase"):
        Phase.parse("")


# -- queries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", 10), ("-3", -3), ("1Ki", 1024), ("2mi", 2 * 2**20), ("1k", 1000), ("5G", 5 * 10**9), ("3x", None),
     ("1.5", None), ("", None)],
)
def test_parse_number_units(text: str, value: int | None) -> None:
    assert parse_number(text) == value


def test_label_terms_are_tri_state() -> None:
    lt = LabelTerm("size", LabelOp.LT_NUMERIC, ("10",))
    assert lt.matches({"size": "9"}) and not lt.matches({"size": "10"})
    inverted = LabelTerm("size", LabelOp.LT_NUMERIC, ("10",), invert=True)
    # a missing key or unparsable number gives no answer, which is false even inverted
    assert not inverted.matches({}) and not inverted.matches({"size": "big"})
    assert inverted.matches({"size": "11"})
    eq = LabelTerm("a", LabelOp.EQUAL, ("x",), invert=True)
    assert eq.matches({}) and not eq.matches({"a": "x"})
    assert not LabelTerm("a", LabelOp.EQUAL, ()).matches({"a": ""})
    assert LabelTerm("a", LabelOp.NOT_EXISTS).matches({}) and not LabelTerm("a", LabelOp.NOT_EXISTS).matches({"a": ""})
    assert LabelTerm("a", LabelOp.LTE, ("b",)).matches({"a": "b"})
    assert LabelTerm("a", LabelOp.LTE_NUMERIC, ("1Ki",)).matches({"a": "1024"})
    q = LabelQuery([LabelTerm("a", LabelOp.EXISTS), LabelTerm("b", LabelOp.IN, ("1", "2"))])
    assert q.matches({"a": "", "b": "2"}) and not q.matches({"a": "", "b": "3"})


@given(st.dictionaries(st.sampled_from("abc"), st.sampled_from(["1", "2", "x"])), st.sampled_from("abc"))
def test_exists_and_its_inversion_partition_every_label_set(labels: dict[str, str], key: str) -> None:
    assert LabelTerm(key).matches(labels) != LabelTerm(key, invert=True).matches(labels)


def test_id_query_is_an_unanchored_search_and_validates() -> None:
    assert IDQuery("b").matches("abc") and not IDQuery("^b").matches("abc") and IDQuery("").matches("x")
    with pytest.raises(ValueError, match="invalid id regexp"):
        IDQuery("(")


# -- definitions -----------------------------------------------------------------------------


def test_definition_fill_matches_cosi_rules() -> None:
    d = ResourceDefinition.make("AddressStatuses.net.kos.dev", "network")
    assert d.display_type == "AddressStatus"
    assert d.aliases == ("addressstatus", "as")
    assert d.all_aliases == (
        "addressstatuses",
        "addressstatuses.net",
        "addressstatuses.net.kos",
        "addressstatus",
        "as",
    )
    assert d.id == "addressstatuses.net.kos.dev"
    assert ResourceDefinition.make("LinkSpecs.net.kos.dev", "n").aliases == ("linkspec", "ls")
    assert ResourceDefinition.make("Services.v1alpha1.kos.dev", "n").aliases == ("service",)


@pytest.mark.parametrize(
    ("type", "error"),
    [
        ("Links", "Name.suffix"),
        ("links.net.kos.dev", "capital"),
        ("Link.net.kos.dev", "plural"),
        ("Links.Net", "suffix"),
    ],
)
def test_definition_rejects_bad_type_names(type: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ResourceDefinition.make(type, "ns")


@pytest.mark.parametrize(
    ("plural", "single"),
    [("Addresses", "Address"), ("Statuses", "Status"), ("Policies", "Policy"), ("Links", "Link"),
     ("Processes", "Process"), ("MachineConfigs", "MachineConfig")],
)
def test_singular(plural: str, single: str) -> None:
    assert singular(plural) == single


def test_registry_resolves_case_insensitively() -> None:
    reg = Registry()

    @resource_type("NodeAddresses.net.kos.dev", namespace="network", registry=reg)
    @dataclass
    class NodeAddressSpec(Spec):
        addresses: list[str] = spec_field(1, default_factory=list)

    for name in ["NodeAddresses.net.kos.dev", "nodeaddress", "NodeAddresses", "nas", "NODEADDRESSES.NET"]:
        assert reg.resolve(name).type == "NodeAddresses.net.kos.dev"
    with pytest.raises(LookupError, match="not registered"):
        reg.resolve("nothing")


# -- spec encodings --------------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 0
    GREEN = 1


@dataclass
class Inner(Spec):
    name: str = spec_field(1, default="")
    weight: float = spec_field(2, default=0.0)


@dataclass
class Outer(Spec):
    count: int = spec_field(1, default=0)
    flag: bool = spec_field(2, default=False)
    text: str = spec_field(3, default="")
    blob: bytes = spec_field(4, default=b"")
    color: Color = spec_field(5, default=Color.RED)
    nums: list[int] = spec_field(6, default_factory=list)
    names: list[str] = spec_field(7, default_factory=list)
    inner: Inner | None = spec_field(8, default=None)
    inners: list[Inner] = spec_field(9, default_factory=list)
    attrs: dict[str, str] = spec_field(10, default_factory=dict)
    link_name: str = spec_field(11, yaml="linkName", default="")
    local_only: str = spec_field(None, default="", omitempty=True)


inners = st.builds(Inner, name=st.text(max_size=5), weight=st.floats(allow_nan=False))
outers = st.builds(
    Outer,
    count=st.integers(-(2**63), 2**63 - 1),
    flag=st.booleans(),
    text=st.text(max_size=10),
    blob=st.binary(max_size=10),
    color=st.sampled_from(Color),
    nums=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
    names=st.lists(st.text(max_size=4), max_size=3),
    inner=st.none() | inners,
    inners=st.lists(inners, max_size=3),
    attrs=st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
    link_name=st.text(max_size=5),
)


@given(outers)
def test_protobuf_round_trip(spec: Outer) -> None:
    assert Outer.unmarshal_proto(spec.marshal_proto()) == spec


@given(outers)
def test_yaml_round_trip_and_copy(spec: Outer) -> None:
    assert Outer.from_yaml(spec.to_yaml()) == spec
    c = spec.copy()
    assert c == spec
    c.names.append("new")
    c.attrs["new"] = "v"
    assert "new" not in spec.names and "new" not in spec.attrs


def test_default_spec_encodes_to_nothing_and_known_bytes() -> None:
    assert Outer().marshal_proto() == b""
    assert Outer(count=150, text="hi").marshal_proto() == b"\x08\x96\x01\x1a\x02hi"
    assert Outer(nums=[1, 2]).marshal_proto() == b"\x32\x02\x01\x02"  # packed
    assert Outer(count=-1).marshal_proto() == b"\x08" + b"\xff" * 9 + b"\x01"


def test_unknown_fields_are_skipped() -> None:
    data = Outer(count=1).marshal_proto() + b"\xa0\x06\x05"  # field 100, varint 5
    assert Outer.unmarshal_proto(data) == Outer(count=1)


def test_yaml_names_are_camel_case_or_declared() -> None:
    y = Outer(link_name="eth0").to_yaml()
    assert y["linkName"] == "eth0" and "localOnly" not in y and y["color"] == "red"


# -- YAML rendering --------------------------------------------------------------------------


def test_resource_yaml_has_cosi_shape() -> None:
    md = Metadata(
        "network", "Things.kos.dev", "eth0", version=3, labels={"b": "2", "a": "1"}, finalizers=["x"],
        created=0, updated=86400,
    )
    text = resource_yaml(Resource(md, DynamicSpec(b"", "mtu: 1500\nnames:\n    - a\n")))
    assert text == (
        "metadata:\n"
        "    namespace: network\n"
        "    type: Things.kos.dev\n"
        "    id: eth0\n"
        "    version: 3\n"
        "    owner:\n"
        "    phase: running\n"
        "    created: 1970-01-01T00:00:00Z\n"
        "    updated: 1970-01-02T00:00:00Z\n"
        "    labels:\n"
        "        a: 1\n"
        "        b: 2\n"
        "    finalizers:\n"
        "        - x\n"
        "spec:\n"
        "    mtu: 1500\n"
        "    names:\n"
        "        - a\n"
    )
    typed = resource_yaml(Resource(md, Outer(names=["n"], link_name="eth0")))
    assert "spec:\n    count: 0\n" in typed and "    names:\n        - n\n" in typed and "linkName: eth0" in typed
