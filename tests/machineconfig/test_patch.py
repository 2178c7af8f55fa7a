"""Patches: strategic merge rules, JSON 6902 operations and errors, and hypothesis laws
(empty patch is identity; merging a map-only patch twice equals once; JSON add-then-remove
is identity; patch-then-load/validate never crashes with anything but ConfigErrors)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kos.resources import machineconfig as mc
from kos.resources.machineconfig import ConfigContainer, ConfigErrors, PatchError
from kos.resources.machineconfig.patch import json_patch, merge


def test_maps_merge_lists_append() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    out = merge(base, {"a": {"c": [3], "e": True}, "f": None})
    assert out == {"a": {"b": 1, "c": [1, 2, 3], "e": True}, "d": "x", "f": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}  # inputs untouched


def test_replace_and_delete_directives() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": {"x": 1, "y": 2}}
    assert merge(base, {"a": {"c": [{"$patch": "replace"}, 9]}}) == {"a": {"b": 1, "c": [9]}, "d": {"x": 1, "y": 2}}
    assert merge(base, {"d": {"$patch": "replace", "z": 3}}) == {"a": base["a"], "d": {"z": 3}}
    assert merge(base, {"d": {"$patch": "delete"}}) == {"a": base["a"]}
    assert merge(base, {"a": {"b": {"$patch": "delete"}}}) == {"a": {"c": [1, 2]}, "d": base["d"]}
    assert merge(base, {"nothere": {"$patch": "delete"}}) == base
    with pytest.raises(PatchError, match=r"d: \$patch: 'merge' is invalid, expected delete or replace"):
        merge(base, {"d": {"$patch": "merge"}})


def test_interfaces_merge_by_name() -> None:
    docs = [{"version": "v1alpha1", "machine": {"network": {"interfaces": [
        {"interface": "eth0", "addresses": ["10.0.0.2/24"], "mtu": 1500},
        {"interface": "eth1", "dhcp": True},
    ]}}}]
    patch = mc.parse_patch("""\
machine:
  network:
    interfaces:
      - interface: eth0
        mtu: 9000
        addresses: [10.0.0.3/24]
      - interface: eth1
        $patch: delete
      - interface: eth2
        dhcp: true
""")
    out = mc.apply_patch(docs, patch)
    assert out[0]["machine"]["network"]["interfaces"] == [
        {"interface": "eth0", "addresses": ["10.0.0.2/24", "10.0.0.3/24"], "mtu": 9000},
        {"interface": "eth2", "dhcp": True},
    ]


def test_multi_doc_patch(generated: mc.Generated) -> None:
    base = ConfigContainer.load(generated.worker.to_yaml() + """\
---
apiVersion: v1alpha1
kind: LinkConfig
name: eth1
mtu: 1500
""").to_data()
    patch = mc.parse_patch("""\
apiVersion: v1alpha1
kind: LinkConfig
name: eth1
mtu: 9000
addresses: [{address: 192.168.5.2/24}]
---
apiVersion: v1alpha1
kind: HostnameConfig
hostname: w-1
""")
    c = ConfigContainer.from_data(mc.apply_patch(base, patch))
    link = c.document(mc.LinkConfig, "eth1")
    assert link is not None and link.mtu == 9000 and link.addresses[0].address == "192.168.5.2/24"
    host = c.document(mc.HostnameConfig)
    assert host is not None and host.hostname == "w-1"
    gone = ConfigContainer.from_data(mc.apply_patch(c.to_data(), mc.parse_patch(
        "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth1\n$patch: delete\n")))
    assert gone.document(mc.LinkConfig, "eth1") is None
    assert gone.v1alpha1 == c.v1alpha1


def test_json6902_operations() -> None:
    doc = {"machine": {"certSANs": ["a"], "network": {"hostname": "x"}}, "cluster": {"n": {"k": 1}}}
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/machine/certSANs/-", "value": "b"},
        {"op": "add", "path": "/machine/certSANs/0", "value": "z"},
        {"op": "replace", "path": "/machine/network/hostname", "value": "y"},
        {"op": "test", "path": "/machine/network/hostname", "value": "y"},
        {"op": "copy", "from": "/machine/network", "path": "/machine/net2"},
        {"op": "move", "from": "/cluster/n", "path": "/cluster/m"},
        {"op": "remove", "path": "/machine/certSANs/1"},
        {"op": "add", "path": "/a~1b", "value": {"c~d": 1}},
    ]
    out = json_patch(doc, ops)
    assert out == {"machine": {"certSANs": ["z", "b"], "network": {"hostname": "y"}, "net2": {"hostname": "y"}},
                   "cluster": {"m": {"k": 1}}, "a/b": {"c~d": 1}}
    assert doc["machine"]["certSANs"] == ["a"]


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ([{"op": "remove", "path": "/machine/nothere"}],
         r"JSON patch operation \[0\] \(remove /machine/nothere\): path component 'nothere' does not exist"),
        ([{"op": "replace", "path": "/machine/certSANs/5", "value": 1}], "list index 5 is out of range"),
        ([{"op": "add", "path": "machine", "value": 1}], "expected a JSON pointer starting with '/'"),
        ([{"op": "test", "path": "/machine/certSANs/0", "value": "q"}], "test failed"),
        ([{"op": "frob", "path": "/x"}], "op 'frob' is invalid"),
        ([{"op": "add", "path": "/x"}], "missing 'value'"),
        ([{"op": "move", "from": "/machine", "path": "/machine/x"}], "cannot move a value into itself"),
        ([{"op": "add", "path": "/machine/certSANs/01", "value": 1}], "list index '01' is invalid"),
    ],
)
def test_json6902_errors(ops: list[dict[str, Any]], message: str) -> None:
    doc = {"machine": {"certSANs": ["a"]}}
    with pytest.raises(PatchError, match=message):
        json_patch(doc, ops)
    assert doc == {"machine": {"certSANs": ["a"]}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("machine: [", "valid YAML"),
        ("- {op: add, path: /a, value: 1}\n- 3\n", r"operation \[1\] 3 is invalid, expected a mapping"),
        ("a: 1\n---\n- x\n", "document 1 is list, expected a mapping"),
    ],
)
def test_parse_patch_errors(text: str, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        mc.parse_patch(text)


def test_json_patch_needs_v1alpha1() -> None:
    with pytest.raises(PatchError, match="no v1alpha1 document"):
        mc.apply_patch([{"apiVersion": "v1alpha1", "kind": "HostnameConfig"}],
                       mc.parse_patch('[{"op": "add", "path": "/x", "value": 1}]'))


# --- laws --------------------------------------------------------------------------------

keys = st.sampled_from(["machine", "cluster", "network", "type", "interfaces", "a", "b", "mtu", "certSANs"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=8))
plain = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)
documents = st.dictionaries(keys, plain, max_size=4)


def _maps_only(v: Any) -> bool:
    if isinstance(v, dict):
        return all(_maps_only(x) for x in v.values())
    return not isinstance(v, list)


@given(documents)
def test_empty_patch_is_identity(doc: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    assert merge(doc, {}) == doc
    assert json_patch(doc, []) == doc
    assert doc == before


@given(documents, documents)
def test_map_merge_is_idempotent(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge(doc, patch)
    if _maps_only(patch):
        assert merge(once, patch) == once


@given(documents, keys, plain)
def test_json_add_then_remove_is_identity(doc: dict[str, Any], key: str, value: Any) -> None:
    if key in doc:
        return
    added = json_patch(doc, [{"op": "add", "path": f"/{key}", "value": value}])
    assert added[key] == value
    assert json_patch(added, [{"op": "remove", "path": f"/{key}"}]) == doc


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(patch=documents)
def test_patch_then_validate_never_crashes(generated: mc.Generated, patch: dict[str, Any]) -> None:
    docs = generated.worker.to_data()
    patched = mc.apply_patch(docs, mc.StrategicMergePatch((patch,)))
    for strict in (True, False):
        try:
            c = ConfigContainer.from_data(patched, strict=strict)
            c.validate("metal")
            c.redacted().to_yaml()
        except ConfigErrors as exc:
            assert exc.errors and all(str(e) for e in exc.errors)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(patch=documents)
def test_loaded_patched_config_round_trips(generated: mc.Generated, patch: dict[str, Any]) -> None:
    patched = mc.apply_patch(generated.worker.to_data(), mc.StrategicMergePatch((patch,)))
    try:
        c = ConfigContainer.from_data(patched, strict=False)
    except ConfigErrors:
        return
    assert ConfigContainer.load(c.to_yaml()) == ConfigContainer.from_data(c.to_data())


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from([
        "/cluster/controlPlane/endpoint", "/machine/network", "/machine/certSANs/-", "/machine/token",
        "/cluster/clusterName", "/cluster/network/podSubnets/0", "/machine/install/disk", "/cluster/token",
        "/machine/ca/crt", "/cluster/secretboxEncryptionSecret", "/machine/kubelet/nodeIP",
    ]),
    value=st.one_of(st.text(max_size=30), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2)),
)
def test_json_patched_fields_never_crash(generated: mc.Generated, path: str, value: Any) -> None:
    docs = mc.apply_patch(generated.controlplane.to_data(),
                          mc.JSON6902Patch(({"op": "add", "path": path, "value": value},)))
    try:
        ConfigContainer.from_data(docs).validate("metal")
    except ConfigErrors as exc:
        assert all(e.path for e in exc.errors)


@given(st.text(max_size=40))
def test_normalize_endpoint_never_crashes(text: str) -> None:
    try:
        out = mc.normalize_endpoint(text)
    except mc.GenerateError as exc:
        assert str(exc).startswith("endpoint: ")
    else:
        assert out.startswith("https://")
